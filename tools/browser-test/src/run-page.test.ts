import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { browserAvailable, launchBrowser, type LaunchedBrowser } from './launch-browser';
import { runPage } from './run-page';
import { servePage, type ServedPage } from './serve-page';

describe.skipIf(!browserAvailable())('runPage', () => {
  let browser: LaunchedBrowser;
  let served: ServedPage;
  beforeAll(async () => {
    served = await servePage({ entry: fileURLToPath(new URL('./pages/throws.ts', import.meta.url)) });
    browser = await launchBrowser();
  });
  afterAll(async () => {
    await browser?.close();
    await served?.close();
  });

  it('rejects with the message of an uncaught page exception, without waiting for its timeout', async () => {
    await expect(runPage(browser.context, served.url, 60_000)).rejects.toThrow(/the page threw on purpose/);
  }, 30_000);

  it('serves only the page and its module', async () => {
    expect((await fetch(served.url)).status).toBe(200);
    expect((await fetch(new URL('page.js', served.url))).headers.get('content-type')).toMatch(/javascript/);
    expect((await fetch(new URL('elsewhere', served.url))).status).toBe(404);
  });
});
