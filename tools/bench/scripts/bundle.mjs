#!/usr/bin/env node
// Bundles a tools/bench entry (default src/cli.ts) into one ESM file for Node, WGSL inlined and workspace
// packages taken from source; `webgpu` stays external so the bundle uses whatever copy sits beside it
// (on the GPU machine: .gpu/node_modules/webgpu, put there by shared/gpu/pack.sh).
// Usage: node tools/bench/scripts/bundle.mjs [ENTRY] [OUTFILE]
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { wgslRawPlugin } from '@webattn/config/wgsl-plugin';
import { build } from 'esbuild';

const benchRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const entry = path.resolve(process.argv[2] ?? path.join(benchRoot, 'src/cli.ts'));
const outfile = path.resolve(process.argv[3] ?? path.join(benchRoot, '../../.gpu/bench.mjs'));

const result = await build({
  entryPoints: [entry],
  outfile,
  bundle: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  conditions: ['@webattn/source'],
  external: ['webgpu'],
  plugins: [wgslRawPlugin()],
  // A few dependencies may be CommonJS; give the ESM bundle a `require` for them.
  banner: { js: "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);" },
  sourcemap: 'inline',
  logLevel: 'warning',
  metafile: true,
});
const bytes = Object.values(result.metafile.outputs).reduce((sum, output) => sum + output.bytes, 0);
console.log(`bundled ${path.relative(process.cwd(), entry)} -> ${path.relative(process.cwd(), outfile)} (${(bytes / 1024).toFixed(0)} KiB)`);
