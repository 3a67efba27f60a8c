import { defineConfig } from 'vite';

/**
 * The demo builds the workspace packages from their sources (the "@webattn/source" export condition), so
 * `pnpm demo` needs no package build first; WGSL files load through Vite's own `?raw` imports.
 */
export default defineConfig({
  base: './',
  resolve: { conditions: ['@webattn/source', 'module', 'browser', 'development|production'] },
  build: {
    target: 'es2022',
    rolldownOptions: {
      onLog(level, log, handler) {
        // The playground checks results with the project's tolerance rule from '@webattn/reference/testing'; that
        // entry also holds the Node-only PyTorch fixture loader, whose node:* imports are never reached in a browser.
        if (log.message.includes('externalized for browser compatibility') && log.message.includes('torch-fixtures')) return;
        handler(level, log);
      },
    },
  },
  server: { host: '127.0.0.1' },
});
