export {
  DEFAULT_CHROMIUM,
  WEBGPU_CHROMIUM_FLAGS,
  browserAvailable,
  launchBrowser,
  type LaunchOptions,
  type LaunchedBrowser,
} from './launch-browser';
// Page modules (bundled for the browser) import reportResult from '@webattn/browser-test/page', not from here.
export { runPage, type PageRun } from './run-page';
export { servePage, type ServePageOptions, type ServedPage } from './serve-page';
