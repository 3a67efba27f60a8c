// Node module hooks: `import source from './kernel.wgsl?raw'` loads the file's text, as Vite and the esbuild
// plugin do, so TypeScript sources that import WGSL run directly under Node (with tsx) — used by tools/bench.
import { readFile } from 'node:fs/promises';

const RAW_WGSL = /\.wgsl\?raw$/;

export async function resolve(specifier, context, nextResolve) {
  if (!RAW_WGSL.test(specifier)) return nextResolve(specifier, context);
  const url = new URL(specifier, context.parentURL);
  return { url: url.href, shortCircuit: true };
}

export async function load(url, context, nextLoad) {
  if (!RAW_WGSL.test(url)) return nextLoad(url, context);
  const file = new URL(url);
  file.search = '';
  const text = await readFile(file, 'utf8');
  return { format: 'module', source: `export default ${JSON.stringify(text)};`, shortCircuit: true };
}
