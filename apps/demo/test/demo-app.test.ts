/**
 * The demo, end to end: builds the app with Vite, serves dist/ on 127.0.0.1 (vite preview), and drives it in
 * headless Chromium with WebGPU on SwiftShader (tools/browser-test's launcher). It runs the playground and checks
 * the output against the float64 reference (the page's own comparison, whose numbers are re-checked here), the
 * explain table, a forced backend that cannot run, the heatmap, a short training run with both charts, and the
 * CPU path in a Chromium without WebGPU. Any console error fails the test. Screenshots go to apps/demo/test-output/ (git-ignored).
 */
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { DEFAULT_CHROMIUM, launchBrowser, type LaunchedBrowser } from '@webattn/browser-test';
import type { Page } from 'playwright-core';
import { build, preview, type PreviewServer } from 'vite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const appRoot = fileURLToPath(new URL('..', import.meta.url));
const outputDir = fileURLToPath(new URL('../test-output/', import.meta.url));
const chromiumPath = process.env.WEBATTN_CHROMIUM ?? DEFAULT_CHROMIUM;
const haveChromium = existsSync(chromiumPath);
if (!haveChromium && process.env.WEBATTN_REQUIRE_GPU === '1') {
  throw new Error(`WEBATTN_REQUIRE_GPU=1 but there is no Chromium at ${chromiumPath}: run 'bash scripts/setup-system.sh'`);
}
if (!haveChromium) console.warn(`[webattn] demo browser test skipped: no Chromium at ${chromiumPath}`);

/** A page with every console error and uncaught exception collected. */
async function openPage(browser: LaunchedBrowser, url: string, withoutWebGpu = false): Promise<{ page: Page; errors: string[] }> {
  const page = await browser.context.newPage();
  if (withoutWebGpu) {
    // As in a browser without WebGPU: navigator.gpu is undefined before any page script runs.
    await page.addInitScript(() => Object.defineProperty(Navigator.prototype, 'gpu', { get: () => undefined, configurable: true }));
  }
  await page.setViewportSize({ width: 1440, height: 900 });
  const errors: string[] = [];
  page.on('console', (message) => {
    if (message.type() === 'error') errors.push(message.text());
  });
  page.on('pageerror', (error) => errors.push(`uncaught: ${error.message}`));
  await page.goto(url);
  await page.waitForSelector('#app[data-ready]', { timeout: 60_000 });
  expect(await page.getAttribute('#app', 'data-ready')).toBe('true');
  return { page, errors };
}

async function fill(page: Page, form: string, values: Record<string, string | number>): Promise<void> {
  for (const [name, value] of Object.entries(values)) {
    const selector = `${form} [name="${name}"]`;
    const tag = await page.$eval(selector, (element) => element.tagName);
    if (tag === 'SELECT') await page.selectOption(selector, String(value));
    else await page.fill(selector, String(value));
  }
}

async function setChecked(page: Page, form: string, names: Record<string, boolean>): Promise<void> {
  for (const [name, checked] of Object.entries(names)) await page.setChecked(`${form} [name="${name}"]`, checked);
}

/** Runs the playground form and waits until the card says done or failed. */
async function runPlayground(page: Page): Promise<string> {
  await page.click('#run-playground');
  await page.waitForSelector('#playground[data-state="done"], #playground[data-state="failed"]', { timeout: 150_000 });
  return (await page.getAttribute('#playground', 'data-state'))!;
}

/** Pixels of a canvas that are neither transparent nor white, and its distinct colours (capped). */
async function canvasInk(page: Page, selector: string): Promise<{ inked: number; colours: number }> {
  return page.$eval(selector, (canvas) => {
    const c = canvas as HTMLCanvasElement;
    const pixels = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data;
    let inked = 0;
    const colours = new Set<number>();
    for (let i = 0; i < pixels.length; i += 4) {
      const [r, g, b, a] = [pixels[i]!, pixels[i + 1]!, pixels[i + 2]!, pixels[i + 3]!];
      if (a > 0 && !(r > 250 && g > 250 && b > 250)) inked++;
      if (colours.size < 1000) colours.add((r << 16) | (g << 8) | b);
    }
    return { inked, colours: colours.size };
  });
}

/** The page's reference check: error, tolerance and its own verdict. */
async function referenceCheck(page: Page): Promise<{ error: number; tolerance: number; pass: string | null }> {
  const handle = page.locator('[data-testid="max-error"]');
  return {
    error: Number(await handle.getAttribute('data-value')),
    tolerance: Number(await handle.getAttribute('data-tolerance')),
    pass: await handle.getAttribute('data-pass'),
  };
}

describe.skipIf(!haveChromium)('the demo app in headless Chromium (WebGPU on SwiftShader)', () => {
  let browser: LaunchedBrowser;
  let server: PreviewServer;
  let url: string;

  beforeAll(async () => {
    await build({ root: appRoot, logLevel: 'warn' });
    server = await preview({ root: appRoot, logLevel: 'warn', preview: { host: '127.0.0.1', port: 0, strictPort: false, open: false } });
    const { port } = server.httpServer.address() as AddressInfo;
    url = `http://127.0.0.1:${port}/`;
    browser = await launchBrowser();
    await mkdir(outputDir, { recursive: true });
  });
  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  it('runs the playground, explains every backend, draws the heatmap and trains the seed model on WebGPU', async () => {
    const { page, errors } = await openPage(browser, url);
    try {
      expect(await page.textContent('[data-testid="device-kind"]')).toMatch(/^WebGPU/);
      expect(await page.locator('[data-testid="no-webgpu"]').count()).toBe(0);
      expect(await page.textContent('#device [data-testid="adapter"]')).not.toBe('');
      expect(await page.locator('#device [data-feature="shader-f16"]').count()).toBe(1);
      // f16 is offered exactly when the device panel lists shader-f16 (SwiftShader has none).
      const hasF16 = (await page.getAttribute('#device [data-feature="shader-f16"]', 'class'))!.includes('on');
      expect(await page.$eval('#playground-form [name="dtype"] option[value="f16"]', (option) => (option as HTMLOptionElement).disabled)).toBe(!hasF16);

      // Playground: a small causal problem with a random bool mask and dropout, the dispatcher choosing.
      await fill(page, '#playground-form', { batch: 1, heads: 2, queryLength: 64, keyLength: 64, headDim: 32, dtype: 'f32', mask: 'bool', dropoutP: 0.1, repeats: 2, backend: 'auto' });
      await setChecked(page, '#playground-form', { causal: true });
      expect(await runPlayground(page), (await page.textContent("#playground-results")) ?? "").toBe("done");
      const check = await referenceCheck(page);
      expect(Number.isFinite(check.error), `error ${check.error}`).toBe(true);
      expect(check.tolerance).toBeGreaterThan(0);
      expect(check.error).toBeLessThanOrEqual(check.tolerance);
      expect(check.pass).toBe('true');
      expect(Number(await page.getAttribute('[data-testid="time"]', 'data-value'))).toBeGreaterThan(0);
      const ran = (await page.textContent('[data-testid="ran-backend"]'))!;
      expect(['flash', 'efficient', 'math']).toContain(ran);

      // Explain: every backend has a row; the chosen one is eligible; cpu is not (the tensors are on the GPU).
      const rows = await page.$$eval('[data-testid="explain"] tbody tr', (trs) =>
        trs.map((tr) => ({ name: tr.getAttribute('data-backend'), eligible: tr.getAttribute('data-eligible'), reasons: tr.querySelectorAll('.reasons li').length })),
      );
      expect(rows.map((row) => row.name)).toEqual(['flash', 'efficient', 'math', 'cpu']);
      expect(rows.find((row) => row.name === ran)?.eligible).toBe('true');
      expect(rows.find((row) => row.name === 'cpu')).toMatchObject({ eligible: 'false' });
      expect(rows.find((row) => row.name === 'cpu')!.reasons).toBeGreaterThan(0);

      // Heatmap: drawn, with masked cells (causal + bool mask) and a range of weights.
      expect(await page.getAttribute('[data-testid="heatmap"]', 'data-rendered')).toBe('true');
      const heat = await canvasInk(page, '.heatmap-canvas');
      expect(heat.inked).toBeGreaterThan(1000);
      expect(heat.colours).toBeGreaterThan(20);
      expect(await page.textContent('.heatmap-legend')).toMatch(/masked: [1-9][\d,]* cells/);

      // Short training: two variants × two option sets, tiny size, 3 steps.
      await fill(page, '#training-form', { batch: 1, seq: 16, embed: 16, heads: 2, steps: 3 });
      await setChecked(page, '#training-form', {
        'variant-naive': true,
        'variant-mha': false,
        'variant-sdpa': false,
        'variant-flash': true,
        'options-none': true,
        'options-key-padding': false,
        'options-bool-mask': false,
        'options-dropout': false,
        'options-mask+dropout': false,
        'options-causal': true,
      });
      await page.click('#run-training');
      await page.waitForSelector('#training[data-state="done"], #training[data-state="failed"]', { timeout: 150_000 });
      expect(await page.getAttribute('#training', 'data-state')).toBe('done');
      const trained = await page.$$eval('[data-testid="training-table"] tbody tr', (trs) =>
        trs.map((tr) => ({ variant: tr.getAttribute('data-variant'), options: tr.getAttribute('data-options'), ms: Number(tr.getAttribute('data-ms') || 'NaN'), backend: tr.children[4]?.textContent })),
      );
      expect(trained.map((row) => `${row.variant}/${row.options}`).sort()).toEqual(['flash/causal', 'flash/none', 'naive/causal', 'naive/none']);
      for (const row of trained) expect(row.ms, `${row.variant}/${row.options}`).toBeGreaterThan(0);
      expect(trained.filter((row) => row.variant === 'flash').map((row) => row.backend)).toEqual(['flash', 'flash']);
      expect(await page.getAttribute('[data-testid="training-progress"]', 'value')).toBe(String(4 * 4));
      expect((await canvasInk(page, '#step-chart')).inked).toBeGreaterThan(500);
      expect((await canvasInk(page, '#loss-chart')).inked).toBeGreaterThan(500);

      await page.screenshot({ path: `${outputDir}demo.png`, fullPage: true });

      // A forced backend that cannot run fails with its reasons, shown on the page (not thrown to the console).
      await fill(page, '#playground-form', { backend: 'cpu' });
      expect(await runPlayground(page)).toBe('failed');
      expect(await page.textContent('[data-testid="failure"]')).toMatch(/cpu/);

      expect(errors).toEqual([]);
    } finally {
      await page.close();
    }
  });

  it('in a browser without WebGPU says so and still runs small sizes on the CPU', async () => {
    const { page, errors } = await openPage(browser, url, true);
    try {
      expect(await page.textContent('[data-testid="no-webgpu"]')).toMatch(/WebGPU is not available here: .*navigator\.gpu/);
      expect(await page.textContent('[data-testid="device-kind"]')).toBe('CPU only');
      await fill(page, '#playground-form', { batch: 1, heads: 2, queryLength: 16, keyLength: 24, headDim: 8, mask: 'additive', repeats: 1 });
      await setChecked(page, '#playground-form', { causal: true });
      await fill(page, '#playground-form', { alignment: 'bottom-right' });
      expect(await runPlayground(page), (await page.textContent("#playground-results")) ?? "").toBe("done");
      expect(await page.textContent('[data-testid="ran-backend"]')).toBe('cpu');
      const check = await referenceCheck(page);
      expect(check.error).toBeLessThanOrEqual(check.tolerance);
      expect(await page.getAttribute('[data-testid="heatmap"]', 'data-rendered')).toBe('true');

      // Training on the CPU: flash is unchecked (it needs a GPU); a tiny model, two steps.
      expect(await page.isChecked('#training-form [name="variant-flash"]')).toBe(false);
      await fill(page, '#training-form', { batch: 1, seq: 8, embed: 8, heads: 2, steps: 2 });
      await setChecked(page, '#training-form', {
        'variant-naive': true,
        'variant-mha': true,
        'variant-sdpa': false,
        ...Object.fromEntries(['key-padding', 'bool-mask', 'dropout', 'mask+dropout', 'causal'].map((name) => [`options-${name}`, false])),
        'options-none': true,
      });
      await page.click('#run-training');
      await page.waitForSelector('#training[data-state="done"], #training[data-state="failed"]', { timeout: 60_000 });
      const trained = await page.$$eval('[data-testid="training-table"] tbody tr', (trs) =>
        trs.map((tr) => ({ variant: tr.getAttribute('data-variant'), ms: Number(tr.getAttribute('data-ms') || 'NaN'), backend: tr.children[4]?.textContent })),
      );
      expect(trained).toMatchObject([
        { variant: 'naive', backend: '—' },
        { variant: 'mha', backend: 'cpu' },
      ]);
      for (const row of trained) expect(row.ms).toBeGreaterThan(0);
      await page.screenshot({ path: `${outputDir}demo-cpu.png`, fullPage: true });
      expect(errors).toEqual([]);
    } finally {
      await page.close();
    }
  });
});
