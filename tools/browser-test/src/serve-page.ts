import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { wgslRawPlugin } from '@webattn/config/wgsl-plugin';
import { build } from 'esbuild';

export interface ServePageOptions {
  /** The page's module: a TypeScript file bundled with esbuild (workspace imports resolve to src/). */
  readonly entry: string;
  readonly title?: string;
}

export interface ServedPage {
  /** http://127.0.0.1:PORT/ — loopback is a secure context, so navigator.gpu is exposed. */
  readonly url: string;
  close(): Promise<void>;
}

/**
 * Bundles `entry` for the browser and serves it as a one-module page on 127.0.0.1 on a free port.
 * Workspace packages are bundled from source through the "@webattn/source" condition, WGSL inlined as in tsup.
 */
export async function servePage(options: ServePageOptions): Promise<ServedPage> {
  const bundle = await build({
    entryPoints: [options.entry],
    bundle: true,
    write: false,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    conditions: ['@webattn/source'],
    // The Node-only `webgpu` package is imported by name at run time only in Node; never in the page.
    external: ['webgpu'],
    plugins: [wgslRawPlugin()],
    logLevel: 'silent',
  });
  const script = bundle.outputFiles[0]?.text ?? '';
  const html = `<!doctype html><html><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>${options.title ?? 'webattn'}</title></head>
<body><script type="module" src="/page.js"></script></body></html>`;
  const server: Server = createServer((request, response) => {
    const pathname = new URL(request.url ?? '/', 'http://127.0.0.1').pathname;
    if (pathname === '/page.js') {
      response.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8' }).end(script);
    } else if (pathname === '/') {
      response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(html);
    } else {
      response.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
