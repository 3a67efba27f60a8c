export { DEFAULT_CHROMIUM, WEBGPU_CHROMIUM_FLAGS, launchBrowser, type LaunchOptions, type LaunchedBrowser } from './launch-browser';
export { runPage, type PageRun } from './run-page';
export { servePage, type ServePageOptions, type ServedPage } from './serve-page';
