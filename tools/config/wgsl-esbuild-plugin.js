// esbuild plugin: `import source from './kernel.wgsl?raw'` becomes the file's text, inlined in the bundle,
// exactly as Vite and Vitest treat `?raw`. One import form for tsup builds, tests and the demo app.
import { readFile } from 'node:fs/promises';
import path from 'node:path';

export function wgslRawPlugin() {
  return {
    name: 'webattn-wgsl-raw',
    setup(build) {
      build.onResolve({ filter: /\.wgsl\?raw$/ }, (args) => ({
        path: path.resolve(args.resolveDir, args.path.replace(/\?raw$/, '')),
        namespace: 'wgsl-raw',
      }));
      build.onLoad({ filter: /.*/, namespace: 'wgsl-raw' }, async (args) => ({
        contents: await readFile(args.path, 'utf8'),
        loader: 'text',
        watchFiles: [args.path],
      }));
    },
  };
}
