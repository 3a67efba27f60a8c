import type { Plugin } from 'esbuild';
export declare function wgslRawPlugin(): Plugin;
