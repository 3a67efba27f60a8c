/**
 * For page modules: runs `work` and publishes its JSON-serialisable result (or its error) where `runPage()`
 * waits for it. Runs in the browser.
 */
export function reportResult<T>(work: () => Promise<T>): void {
  const target = globalThis as { __webattnResult?: unknown };
  work().then(
    (value) => {
      target.__webattnResult = { ok: true, value };
    },
    (error: unknown) => {
      target.__webattnResult = { ok: false, error: error instanceof Error ? `${error.name}: ${error.message}` : String(error) };
    },
  );
}
