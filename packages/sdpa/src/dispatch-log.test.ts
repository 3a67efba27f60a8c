import { afterEach, describe, expect, it, vi } from 'vitest';
import { emitSdpaDispatch, onSdpaDispatch, resetSdpaDebugLog, sdpaDebugEnabled, summarizeProblem, type SdpaDispatchEvent } from './dispatch-log';
import { describeShape } from './test-problems';

const problem = describeShape({ batch: 2, queryHeads: 8, kvHeads: 2, queryLength: 17, keyLength: 23 }, { isCausal: true, dropoutP: 0.1 });
const event: SdpaDispatchEvent = {
  phase: 'forward',
  backend: 'flash',
  reason: 'flash: the only eligible backend',
  summary: summarizeProblem(problem, 'gpu'),
  problem,
  rejections: [],
};

describe('dispatch log', () => {
  const saved = process.env.WEBATTN_DEBUG;
  afterEach(() => {
    if (saved === undefined) delete process.env.WEBATTN_DEBUG;
    else process.env.WEBATTN_DEBUG = saved;
    resetSdpaDebugLog();
    vi.restoreAllMocks();
  });

  it('summarises a problem on one line', () => {
    expect(event.summary).toBe('B2 Hq8 Hkv2 L17 S23 D16/16 f32 gpu causal(top-left) dropout=0.1');
  });

  it('delivers every event to every listener until unsubscribed', () => {
    const first: SdpaDispatchEvent[] = [];
    const second: SdpaDispatchEvent[] = [];
    const stopFirst = onSdpaDispatch((item) => first.push(item));
    const stopSecond = onSdpaDispatch((item) => second.push(item));
    emitSdpaDispatch(event);
    emitSdpaDispatch(event);
    stopFirst();
    emitSdpaDispatch(event);
    stopSecond();
    expect(first).toHaveLength(2);
    expect(second).toHaveLength(3);
  });

  it('WEBATTN_DEBUG=sdpa prints each distinct choice once', () => {
    const info = vi.spyOn(console, 'info').mockImplementation(() => {});
    delete process.env.WEBATTN_DEBUG;
    expect(sdpaDebugEnabled()).toBe(false);
    emitSdpaDispatch(event);
    expect(info).not.toHaveBeenCalled();
    process.env.WEBATTN_DEBUG = 'tensor,sdpa';
    expect(sdpaDebugEnabled()).toBe(true);
    emitSdpaDispatch(event);
    emitSdpaDispatch(event);
    emitSdpaDispatch({ ...event, backend: 'math', reason: 'math: forced' });
    expect(info).toHaveBeenCalledTimes(2);
    expect(info.mock.calls[0]![0]).toBe(
      '[webattn:sdpa] forward B2 Hq8 Hkv2 L17 S23 D16/16 f32 gpu causal(top-left) dropout=0.1 → flash: flash: the only eligible backend',
    );
  });

  it('falls back to localStorage WEBATTN_DEBUG when the environment has none (browsers)', () => {
    const host = globalThis as { localStorage?: unknown };
    const env = process.env;
    delete env.WEBATTN_DEBUG;
    host.localStorage = { getItem: (key: string) => (key === 'WEBATTN_DEBUG' ? 'sdpa' : null) };
    try {
      expect(sdpaDebugEnabled()).toBe(true);
      host.localStorage = { getItem: () => { throw new Error('sandboxed'); } };
      expect(sdpaDebugEnabled()).toBe(false);
    } finally {
      delete host.localStorage;
    }
  });
});
