/**
 * What a user of the published packages gets: each package is packed with `pnpm pack` (which rewrites the
 * workspace:^ ranges to real versions), the tarballs are installed with npm into a temporary project (offline:
 * their dependencies on each other resolve to the tarballs themselves), imported from Node ESM (attention on
 * the CPU device, checked against a plain computation here) and bundled for the browser with Vite.
 *
 * Builds nothing: it packs the `dist/` of `pnpm build` (turbo runs the build first: this package's test task
 * depends on ^build, and every published package is a devDependency).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, extname, join, normalize, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { browserAvailable, launchBrowser, runPage } from '@webattn/browser-test';
import { build } from 'vite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const PACKAGES = ['tensor', 'reference', 'flash', 'sdpa', 'nn'] as const;
const work = mkdtempSync(join(tmpdir(), 'webattn-package-smoke-'));
const tarballs = join(work, 'tarballs');
const project = join(work, 'project');
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** q = [[1,0],[0,1],[1,1]], k = identity, v = [[1,2],[3,4]], scale 1/√2: the attention output computed here. */
const EXPECTED_OUT: number[] = [[1, 0], [0, 1], [1, 1]].flatMap(([a, b]) => {
  const weights = [Math.exp(a! / Math.SQRT2), Math.exp(b! / Math.SQRT2)];
  const total = weights[0]! + weights[1]!;
  return [(weights[0]! * 1 + weights[1]! * 3) / total, (weights[0]! * 2 + weights[1]! * 4) / total];
});

const run = (command: string, args: string[], cwd: string) =>
  execFileSync(command, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, npm_config_yes: 'true' } });

beforeAll(() => {
  for (const name of PACKAGES) {
    const dist = join(repo, 'packages', name, 'dist', 'index.js');
    if (!existsSync(dist)) throw new Error(`packages/${name}/dist is missing: run \`pnpm build\` first (turbo's test task does)`);
  }
  for (const name of PACKAGES) run('pnpm', ['pack', '--pack-destination', tarballs], join(repo, 'packages', name));
  writeFileSync(join(work, 'package.json'), '{}');
  run('mkdir', ['-p', project], work);
  writeFileSync(
    join(project, 'package.json'),
    JSON.stringify({ name: 'webattn-consumer', private: true, type: 'module', version: '0.0.0' }, null, 2),
  );
  const files = readdirSync(tarballs).map((file) => join(tarballs, file));
  run('npm', ['install', '--offline', '--no-audit', '--no-fund', '--ignore-scripts', '--loglevel=error', ...files], project);
  // The optional `webgpu` peer (Dawn for Node), linked from the workspace rather than downloaded: with it the
  // README examples run on WebGPU where there is an adapter.
  const webgpu = join(repo, 'tools', 'package-smoke', 'node_modules', 'webgpu');
  if (existsSync(webgpu)) symlinkSync(realpathSync(webgpu), join(project, 'node_modules', 'webgpu'), 'dir');
}, 180_000);

describe('packed packages', () => {
  it('each tarball has dist, README and package.json, and no workspace: ranges or test files', () => {
    for (const name of PACKAGES) {
      const installed = join(project, 'node_modules', '@webattn', name);
      const manifest = JSON.parse(readFileSync(join(installed, 'package.json'), 'utf8')) as {
        dependencies?: Record<string, string>;
      };
      expect(JSON.stringify(manifest.dependencies ?? {}), name).not.toMatch(/workspace:/);
      expect(existsSync(join(installed, 'dist', 'index.js')), `${name} dist/index.js`).toBe(true);
      expect(existsSync(join(installed, 'dist', 'index.d.ts')), `${name} dist/index.d.ts`).toBe(true);
      expect(existsSync(join(installed, 'README.md')), `${name} README.md`).toBe(true);
      const tests = readdirSync(join(installed, 'src')).filter((file) => file.endsWith('.test.ts'));
      expect(tests, `${name} ships test files`).toEqual([]);
      // Inter-package dependencies resolved to the tarballs, not to nested copies from a registry.
      expect(existsSync(join(installed, 'node_modules')), `${name} has a nested node_modules`).toBe(false);
    }
  });

  it('imports from Node ESM and computes attention on the CPU device', () => {
    const script = `
      import { cpuDevice, tensor } from '@webattn/tensor';
      import { scaledDotProductAttention, explainSdpa } from '@webattn/sdpa';
      import { attentionReference } from '@webattn/reference';
      import { flashAttention, checkFlash } from '@webattn/flash';
      import { MultiheadAttention } from '@webattn/nn';
      const device = cpuDevice();
      const q = tensor(device, [1, 0, 0, 1, 1, 1], [1, 1, 3, 2]);
      const k = tensor(device, [1, 0, 0, 1], [1, 1, 2, 2]);
      const v = tensor(device, [1, 2, 3, 4], [1, 1, 2, 2]);
      const out = await scaledDotProductAttention(q, k, v).toArray();
      const mha = new MultiheadAttention(device, 4, 2, { seed: 1 });
      const x = tensor(device, [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8], [2, 1, 4]);
      const { output } = mha.forward(x, x, x);
      console.log(JSON.stringify({
        out: Array.from(out),
        chosen: explainSdpa(q, k, v).chosen,
        reference: Array.from(attentionReference({ data: [1, 0, 0, 1, 1, 1], shape: [1, 1, 3, 2] }, { data: [1, 0, 0, 1], shape: [1, 1, 2, 2] }, { data: [1, 2, 3, 4], shape: [1, 1, 2, 2] }).out),
        flash: typeof flashAttention === 'function' && typeof checkFlash === 'function',
        mha: output.shape,
      }));
    `;
    writeFileSync(join(project, 'smoke.mjs'), script);
    const result = JSON.parse(run('node', ['smoke.mjs'], project).trim().split('\n').at(-1)!) as {
      out: number[];
      chosen: string;
      reference: number[];
      flash: boolean;
      mha: number[];
    };
    const expected = EXPECTED_OUT;
    result.out.forEach((value, i) => expect(value).toBeCloseTo(expected[i]!, 6));
    result.reference.forEach((value, i) => expect(value).toBeCloseTo(expected[i]!, 12));
    expect(result.chosen).toBe('cpu');
    expect(result.flash).toBe(true);
    expect(result.mha).toEqual([2, 1, 4]);
  });

  it.each(PACKAGES)("%s: the README's Quick start runs against the installed tarballs", (name) => {
    const readme = readFileSync(join(repo, 'packages', name, 'README.md'), 'utf8');
    const marker = '<!-- runnable: tools/package-smoke runs this block against the packed packages -->';
    const at = readme.indexOf(marker);
    expect(at, `packages/${name}/README.md has no runnable Quick start`).toBeGreaterThan(0);
    const block = /```js\n([\s\S]*?)```/.exec(readme.slice(at));
    expect(block, `no js block after the marker in packages/${name}/README.md`).not.toBeNull();
    writeFileSync(join(project, `readme-${name}.mjs`), `${block![1]!}\nprocess.exit(0);\n`);
    const output = run('node', [`readme-${name}.mjs`], project);
    expect(output.trim().length, `packages/${name}/README.md printed nothing`).toBeGreaterThan(0);
  });

  it('bundles for the browser with Vite (WGSL inlined, no Node built-ins)', async () => {
    // The page computes attention on whatever device the browser gives and reports through __webattnResult
    // (the protocol of @webattn/browser-test's runPage).
    writeFileSync(
      join(project, 'main.js'),
      `import { createDevice, tensor } from '@webattn/tensor';
       import { explainSdpa, scaledDotProductAttention } from '@webattn/sdpa';
       import { MultiheadAttention } from '@webattn/nn';
       try {
         const device = await createDevice();
         const q = tensor(device, [1, 0, 0, 1, 1, 1], [1, 1, 3, 2]);
         const k = tensor(device, [1, 0, 0, 1], [1, 1, 2, 2]);
         const v = tensor(device, [1, 2, 3, 4], [1, 1, 2, 2]);
         const chosen = explainSdpa(q, k, v).chosen;
         const out = Array.from(await scaledDotProductAttention(q, k, v).toArray());
         const mha = new MultiheadAttention(device, 4, 2, { seed: 1 });
         const x = tensor(device, [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8], [2, 1, 4]);
         const shape = mha.forward(x, x, x).output.shape;
         globalThis.__webattnResult = { ok: true, value: { kind: device.kind, chosen, out, shape } };
       } catch (error) {
         globalThis.__webattnResult = { ok: false, error: String(error && error.stack || error) };
       }\n`,
    );
    writeFileSync(join(project, 'index.html'), '<!doctype html><script type="module" src="./main.js"></script>\n');
    const output = await build({
      root: project,
      logLevel: 'silent',
      configFile: false,
      build: { outDir: join(project, 'dist'), write: true, minify: false, target: 'es2022' },
    });
    const bundles = (Array.isArray(output) ? output : [output]).flatMap((item) => ('output' in item ? item.output : []));
    const code = bundles.map((chunk) => ('code' in chunk ? chunk.code : '')).join('\n');
    expect(code.length).toBeGreaterThan(10_000);
    expect(code).toMatch(/@compute/); // WGSL text inlined by the packages' build
    expect(code).not.toMatch(/\?raw/);
    expect(code).not.toMatch(/from ["']node:/);
  }, 120_000);

  it.skipIf(!browserAvailable())('the Vite bundle runs in headless Chromium on WebGPU', async () => {
    const dist = join(project, 'dist');
    expect(existsSync(join(dist, 'index.html')), 'the bundle test ran first').toBe(true);
    const types: Record<string, string> = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css' };
    const server = createServer((request, response) => {
      if (request.url === '/favicon.ico') {
        response.writeHead(204).end();
        return;
      }
      const path = join(dist, normalize(decodeURIComponent((request.url ?? '/').split('?')[0]!)).replace(/^(\.\.[/\\])+/, ''));
      const file = path.endsWith('/') || path === dist ? join(path, 'index.html') : path;
      if (!file.startsWith(dist) || !existsSync(file)) {
        response.writeHead(404).end();
        return;
      }
      response.writeHead(200, { 'content-type': types[extname(file)] ?? 'application/octet-stream' }).end(readFileSync(file));
    });
    await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
    const browser = await launchBrowser();
    try {
      const { port } = server.address() as AddressInfo;
      const run = await runPage<{ kind: string; chosen: string; out: number[]; shape: number[] }>(browser.context, `http://127.0.0.1:${port}/`);
      expect(run.result.kind, 'the browser gave a WebGPU device').toBe('gpu');
      expect(['flash', 'math']).toContain(run.result.chosen);
      run.result.out.forEach((value, i) => expect(value).toBeCloseTo(EXPECTED_OUT[i]!, 5));
      expect(run.result.shape).toEqual([2, 1, 4]);
      expect(run.consoleErrors, run.consoleErrors.join('\n')).toEqual([]);
    } finally {
      await browser.close();
      server.close();
    }
  }, 180_000);
});
