/**
 * Scoped backend restriction: `withSdpaBackends(['flash', 'math'], fn)` allows only those backends for every
 * scaledDotProductAttention call made while `fn` runs — including after its awaits.
 *
 * How the scope follows async code:
 * - Node (and Deno, Bun): AsyncLocalStorage, loaded lazily and synchronously through
 *   `process.getBuiltinModule('node:async_hooks')` the first time a scope is opened (no static import of a Node
 *   module, so browser bundles are unaffected). Concurrent scopes never see each other.
 * - Browsers with the TC39 `AsyncContext` proposal (`globalThis.AsyncContext.Variable`): used the same way.
 * - Other browsers (the documented fallback): a stack of active scopes. A scope is active from the call of `fn`
 *   until the promise it returns settles. Sequential code sees exactly its scope; but async work that runs
 *   *concurrently* with an open scope (another task interleaving at an await) also sees it. Where that matters,
 *   pass the per-call `backends` option instead, which is exact everywhere.
 *
 * Nested scopes replace the outer restriction (as PyTorch's `sdpa_kernel`); the per-call `backends` option
 * replaces any scope for that call.
 */
import { InvalidArgumentError } from '@webattn/tensor';
import { SDPA_BACKEND_NAMES, type SdpaBackendName } from './backend';

interface ScopeStore {
  run<T>(value: readonly SdpaBackendName[], fn: () => T): T;
  get(): readonly SdpaBackendName[] | undefined;
}

interface AsyncLocalStorageLike<T> {
  run<R>(store: T, fn: () => R): R;
  getStore(): T | undefined;
}

type Host = {
  process?: { getBuiltinModule?: (id: string) => unknown };
  AsyncContext?: { Variable?: new () => unknown };
};

function nodeStore(host: Host): ScopeStore | null {
  const module = host.process?.getBuiltinModule?.('node:async_hooks') as
    | { AsyncLocalStorage?: new () => AsyncLocalStorageLike<readonly SdpaBackendName[]> }
    | undefined;
  if (!module?.AsyncLocalStorage) return null;
  const storage = new module.AsyncLocalStorage();
  return { run: (value, fn) => storage.run(value, fn), get: () => storage.getStore() };
}

function asyncContextStore(host: Host): ScopeStore | null {
  const context = host.AsyncContext;
  if (!context?.Variable) return null;
  const variable = new context.Variable() as {
    run<R>(value: readonly SdpaBackendName[], fn: () => R): R;
    get(): readonly SdpaBackendName[] | undefined;
  };
  return { run: (value, fn) => variable.run(value, fn), get: () => variable.get() };
}

/** The browser fallback: active from the call of fn until its promise settles (see the header). Exported for tests. */
export function stackStore(): ScopeStore {
  const active: { value: readonly SdpaBackendName[] }[] = [];
  return {
    run(value, fn) {
      const entry = { value };
      active.push(entry);
      const leave = () => {
        const index = active.lastIndexOf(entry);
        if (index >= 0) active.splice(index, 1);
      };
      let result: ReturnType<typeof fn>;
      try {
        result = fn();
      } catch (error) {
        leave();
        throw error;
      }
      if (result && typeof (result as { then?: unknown }).then === 'function') {
        (result as unknown as PromiseLike<unknown>).then(leave, leave);
      } else {
        leave();
      }
      return result;
    },
    get: () => active[active.length - 1]?.value,
  };
}

export type ScopeMechanism = 'AsyncLocalStorage' | 'AsyncContext' | 'stack';

/** Picks the best mechanism the host offers (exported for tests, which pass a fake host). */
export function createScopeStore(host: Host = globalThis as Host): { store: ScopeStore; mechanism: ScopeMechanism } {
  const node = nodeStore(host);
  if (node) return { store: node, mechanism: 'AsyncLocalStorage' };
  const context = asyncContextStore(host);
  if (context) return { store: context, mechanism: 'AsyncContext' };
  return { store: stackStore(), mechanism: 'stack' };
}

let store: ScopeStore | undefined;
let mechanism: ScopeMechanism | undefined;

function scopeStore(): ScopeStore {
  if (!store) ({ store, mechanism } = createScopeStore());
  return store!;
}

/** Which mechanism scopes use in this runtime ('AsyncLocalStorage', 'AsyncContext' or the 'stack' fallback). */
export function sdpaScopeMechanism(): ScopeMechanism {
  scopeStore();
  return mechanism!;
}

/** Validates a list of backend names (typed error naming the bad entries and the valid ones). */
export function validateBackendList(backends: unknown, where: string): readonly SdpaBackendName[] {
  if (!Array.isArray(backends)) {
    throw new InvalidArgumentError(`${where} must be an array of backend names (${SDPA_BACKEND_NAMES.join(', ')}), got ${String(backends)}`);
  }
  const unknown = backends.filter((name) => !(SDPA_BACKEND_NAMES as readonly unknown[]).includes(name));
  if (unknown.length) {
    throw new InvalidArgumentError(
      `${where} has unknown backend ${unknown.map((name) => JSON.stringify(name)).join(', ')}; valid: ${SDPA_BACKEND_NAMES.join(', ')}`,
    );
  }
  if (backends.length === 0) {
    throw new InvalidArgumentError(`${where} is empty; list at least one of ${SDPA_BACKEND_NAMES.join(', ')}`);
  }
  return Object.freeze([...new Set(backends as SdpaBackendName[])]);
}

/**
 * Runs fn with only `backends` allowed for scaledDotProductAttention (sync or async fn; returns its result).
 */
export function withSdpaBackends<T>(backends: readonly SdpaBackendName[], fn: () => T): T {
  const allowed = validateBackendList(backends, 'withSdpaBackends(backends)');
  return scopeStore().run(allowed, fn);
}

/** The innermost active scope's backends, or undefined outside any scope. */
export function currentSdpaBackends(): readonly SdpaBackendName[] | undefined {
  return store?.get();
}
