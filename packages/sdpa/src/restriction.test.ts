import { InvalidArgumentError } from '@webattn/tensor';
import { describe, expect, it } from 'vitest';
import { createScopeStore, currentSdpaBackends, sdpaScopeMechanism, stackStore, validateBackendList, withSdpaBackends } from './restriction';

const tick = () => new Promise((resolve) => setTimeout(resolve, 1));

describe('withSdpaBackends', () => {
  it('uses AsyncLocalStorage in Node', () => {
    expect(sdpaScopeMechanism()).toBe('AsyncLocalStorage');
  });

  it('scopes sync code and returns the function result', () => {
    expect(currentSdpaBackends()).toBeUndefined();
    const seen = withSdpaBackends(['flash', 'math'], () => currentSdpaBackends());
    expect(seen).toEqual(['flash', 'math']);
    expect(currentSdpaBackends()).toBeUndefined();
  });

  it('follows async functions across awaits, nests (inner replaces), and isolates concurrent scopes', async () => {
    const log: string[] = [];
    const task = (backends: ['flash'] | ['math']) =>
      withSdpaBackends(backends, async () => {
        await tick();
        log.push(`${backends[0]}:${currentSdpaBackends()!.join()}`);
        await withSdpaBackends(['cpu'], async () => {
          await tick();
          log.push(`inner:${currentSdpaBackends()!.join()}`);
        });
        log.push(`${backends[0]}:${currentSdpaBackends()!.join()}`);
      });
    await Promise.all([task(['flash']), task(['math'])]);
    expect(log.filter((line) => line.startsWith('flash'))).toEqual(['flash:flash', 'flash:flash']);
    expect(log.filter((line) => line.startsWith('math'))).toEqual(['math:math', 'math:math']);
    expect(log.filter((line) => line.startsWith('inner'))).toEqual(['inner:cpu', 'inner:cpu']);
    expect(currentSdpaBackends()).toBeUndefined();
  });

  it('ends the scope when fn throws', () => {
    expect(() =>
      withSdpaBackends(['math'], () => {
        throw new Error('boom');
      }),
    ).toThrow('boom');
    expect(currentSdpaBackends()).toBeUndefined();
  });

  it('rejects unknown, empty or non-array lists with InvalidArgumentError naming the valid names', () => {
    expect(() => withSdpaBackends(['flash', 'fast' as 'flash'], () => 0)).toThrow(InvalidArgumentError);
    expect(() => validateBackendList(['fast'], 'options.backends')).toThrow(
      'options.backends has unknown backend "fast"; valid: flash, efficient, math, cpu',
    );
    expect(() => validateBackendList([], 'options.backends')).toThrow('is empty');
    expect(() => validateBackendList('flash', 'options.backends')).toThrow('must be an array');
    expect(validateBackendList(['math', 'math'], 'x')).toEqual(['math']);
  });
});

describe('the browser fallback (stack of open scopes)', () => {
  it('is active from the call until the returned promise settles, and after a throw is gone', async () => {
    const store = stackStore();
    let release!: () => void;
    const pending = store.run(['math'], async () => {
      await new Promise<void>((resolve) => (release = resolve));
      return store.get();
    });
    expect(store.get()).toEqual(['math']); // the documented leak: concurrent code sees the open scope
    expect(store.run(['cpu'], () => store.get())).toEqual(['cpu']);
    expect(store.get()).toEqual(['math']);
    release();
    expect(await pending).toEqual(['math']);
    expect(store.get()).toBeUndefined();
    expect(() => store.run(['flash'], () => { throw new Error('boom'); })).toThrow('boom');
    expect(store.get()).toBeUndefined();
  });
});

describe('choosing the scope mechanism', () => {
  it('AsyncLocalStorage where process.getBuiltinModule exists, else AsyncContext, else the stack', () => {
    expect(createScopeStore(globalThis as never).mechanism).toBe('AsyncLocalStorage');
    expect(createScopeStore({}).mechanism).toBe('stack');
    expect(createScopeStore({ process: {} }).mechanism).toBe('stack');
    let value: unknown;
    class Variable {
      run<R>(next: unknown, fn: () => R): R {
        const previous = value;
        value = next;
        try {
          return fn();
        } finally {
          value = previous;
        }
      }
      get() {
        return value;
      }
    }
    const chosen = createScopeStore({ AsyncContext: { Variable } });
    expect(chosen.mechanism).toBe('AsyncContext');
    expect(chosen.store.run(['math'], () => chosen.store.get())).toEqual(['math']);
    expect(chosen.store.get()).toBeUndefined();
  });
});
