import { wgslRawPlugin } from './wgsl-esbuild-plugin.js';

/** The build every published package uses: ESM + .d.ts, WGSL inlined, dependencies left external. */
export function packageBuild(entry = { index: 'src/index.ts' }) {
  return {
    entry,
    format: ['esm'],
    dts: true,
    sourcemap: true,
    clean: true,
    target: 'es2022',
    platform: 'neutral',
    treeshake: true,
    external: ['webgpu'],
    esbuildPlugins: [wgslRawPlugin()],
  };
}
