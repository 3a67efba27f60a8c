import type { BrowserContext } from 'playwright-core';

/** What a page reports by calling `reportResult()` (see page-result.ts) — any JSON value, or an error. */
export interface PageRun<T> {
  readonly result: T;
  /** console.error / console.warn lines and uncaught page errors, in order. */
  readonly consoleErrors: readonly string[];
  readonly consoleWarnings: readonly string[];
}

/**
 * Opens `url` in a new tab, waits until the page reports its result, and returns it with every console error
 * and uncaught exception seen on the way. A page that throws or reports an error rejects with its message.
 */
export async function runPage<T>(context: BrowserContext, url: string, timeoutMs = 120_000): Promise<PageRun<T>> {
  const page = await context.newPage();
  const consoleErrors: string[] = [];
  const consoleWarnings: string[] = [];
  page.on('console', (message) => {
    if (message.type() === 'error') consoleErrors.push(message.text());
    if (message.type() === 'warning') consoleWarnings.push(message.text());
  });
  // An uncaught exception before the page reports would otherwise only show up as a timeout.
  let failEarly: (error: Error) => void = () => undefined;
  const crashed = new Promise<never>((_, reject) => {
    failEarly = reject;
  });
  crashed.catch(() => undefined);
  page.on('pageerror', (error) => {
    consoleErrors.push(`uncaught: ${error.message}`);
    failEarly(new Error(`uncaught exception in the page: ${error.message}`));
  });
  try {
    await page.goto(url);
    const waiting = page.waitForFunction(() => (globalThis as { __webattnResult?: unknown }).__webattnResult, null, {
      timeout: timeoutMs,
    });
    waiting.catch(() => undefined);
    const handle = await Promise.race([waiting, crashed]);
    const outcome = (await handle.jsonValue()) as { ok: true; value: T } | { ok: false; error: string };
    if (!outcome.ok) throw new Error(`the page failed: ${outcome.error}`);
    return { result: outcome.value, consoleErrors, consoleWarnings };
  } finally {
    await page.close();
  }
}
