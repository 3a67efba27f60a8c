/**
 * Bad input, table-driven, through every attention entry point: the dispatcher (automatic and each backend
 * forced), flashAttention, splitKvAttention, mathAttention, cpuAttention and explainSdpa. Each bad call must throw
 * the typed, exported error naming the offending values (and the fix), record nothing, raise no WebGPU
 * validation error, and leave every other tensor intact: afterwards the inputs read back unchanged and a valid
 * call on the same tensors still matches the float64 reference.
 */
import { flashAttention, flashAttentionGrad, splitKvAttention } from '@webattn/flash';
import { attentionReference, cpuAttention, cpuAttentionBackward, mathAttention, mathAttentionBackward } from '@webattn/reference';
import {
  DTypeError,
  DeviceMismatchError,
  DisposedTensorError,
  InvalidArgumentError,
  ResourceLimitError,
  ShapeError,
  WebattnError,
  cpuDevice,
  tensor,
  type AttentionOptions,
  type Device,
  type Tensor,
} from '@webattn/tensor';
import { expectNoGpuErrors, freshSeed, maxAbsDiff, openTestDevice, randomValues } from '@webattn/tensor/testing';
import { afterAll, describe, expect, it } from 'vitest';
import { onSdpaDispatch } from './dispatch-log';
import { explainSdpa, scaledDotProductAttention } from './sdpa';

const gpu = await openTestDevice();
afterAll(() => gpu?.destroy());

const seed = freshSeed();
const B = 2;
const H = 2;
const L = 5;
const S = 6;
const D = 8;

interface Good {
  q: Tensor;
  k: Tensor;
  v: Tensor;
  values: { q: Float32Array; k: Float32Array; v: Float32Array };
}

function goodInputs(device: Device): Good {
  const values = {
    q: randomValues(B * H * L * D, seed),
    k: randomValues(B * H * S * D, seed + 1),
    v: randomValues(B * H * S * D, seed + 2),
  };
  return {
    q: tensor(device, values.q, [B, H, L, D]),
    k: tensor(device, values.k, [B, H, S, D]),
    v: tensor(device, values.v, [B, H, S, D]),
    values,
  };
}

interface BadCall {
  q: Tensor;
  k: Tensor;
  v: Tensor;
  options?: AttentionOptions;
}

interface BadCase {
  name: string;
  /** The bad call; `make` registers every tensor it creates (disposed after the case). */
  build(good: Good, make: (values: ArrayLike<number>, shape: number[], dtype?: 'f32' | 'f16' | 'bool', on?: 'other') => Tensor): BadCall;
  error: new (...args: never[]) => WebattnError;
  /** The message must name the values (and, where it has one, the fix). */
  message: RegExp;
}

const filled = (shape: number[], value = 0.5) => new Float32Array(shape.reduce((a, b) => a * b, 1)).fill(value);

const CASES: BadCase[] = [
  {
    name: 'q of rank 3',
    build: (g, make) => ({ q: make(filled([H, L, D]), [H, L, D]), k: g.k, v: g.v }),
    error: ShapeError,
    message: /q \[2, 5, 8\] has rank 3; attention needs rank 4 .*unsqueeze/,
  },
  {
    name: 'k of rank 5',
    build: (g, make) => ({ q: g.q, k: make(filled([1, B, H, S, D]), [1, B, H, S, D]), v: g.v }),
    error: ShapeError,
    message: /k \[1, 2, 2, 6, 8\] has rank 5/,
  },
  {
    name: 'batch of k differs from q',
    build: (g, make) => ({ q: g.q, k: make(filled([1, H, S, D]), [1, H, S, D]), v: g.v }),
    error: ShapeError,
    message: /same batch size B .*k \[1, 2, 6, 8\]/,
  },
  {
    name: 'heads of v differ from k',
    build: (g, make) => ({ q: g.q, k: g.k, v: make(filled([B, 1, S, D]), [B, 1, S, D]) }),
    error: ShapeError,
    message: /same number of heads.*v \[2, 1, 6, 8\]/,
  },
  {
    name: 'head dim of k differs from q',
    build: (g, make) => ({ q: g.q, k: make(filled([B, H, S, 4]), [B, H, S, 4]), v: g.v }),
    error: ShapeError,
    message: /same head dim D.*k \[2, 2, 6, 4\]/,
  },
  {
    name: 'key length of v differs from k',
    build: (g, make) => ({ q: g.q, k: g.k, v: make(filled([B, H, 3, D]), [B, H, 3, D]) }),
    error: ShapeError,
    message: /same key length S.*v \[2, 2, 3, 8\]/,
  },
  {
    name: 'Hq not a multiple of Hkv',
    build: (g, make) => ({
      q: make(filled([B, 3, L, D]), [B, 3, L, D]),
      k: g.k,
      v: g.v,
      options: { enableGqa: true },
    }),
    error: ShapeError,
    message: /Hq = 3 is not a multiple of kv heads Hkv = 2/,
  },
  {
    name: 'Hq ≠ Hkv without enableGqa',
    build: (g, make) => ({ q: make(filled([B, 4, L, D]), [B, 4, L, D]), k: g.k, v: g.v }),
    error: ShapeError,
    message: /Hq = 4 differ from kv heads Hkv = 2.*enableGqa: true/,
  },
  {
    name: 'mask whose rows cannot broadcast',
    build: (g, make) => ({ ...g, options: { attnMask: make(filled([L + 1, S]), [L + 1, S], 'bool') } }),
    error: ShapeError,
    message: /attnMask \[6, 6\] cannot broadcast to \[B, Hq, L, S\] = \[2, 2, 5, 6\]/,
  },
  {
    name: 'mask with a batch dim that cannot broadcast',
    build: (g, make) => ({ ...g, options: { attnMask: make(filled([3, 1, L, S], 0), [3, 1, L, S]) } }),
    error: ShapeError,
    message: /attnMask \[3, 1, 5, 6\] cannot broadcast.*must equal the target's or be 1/,
  },
  {
    name: 'mask of rank 5',
    build: (g, make) => ({ ...g, options: { attnMask: make(filled([1, B, H, L, S]), [1, B, H, L, S], 'bool') } }),
    error: ShapeError,
    message: /attnMask \[1, 2, 2, 5, 6\] cannot broadcast/,
  },
  {
    name: 'bool q',
    build: (g, make) => ({ q: make(filled([B, H, L, D], 1), [B, H, L, D], 'bool'), k: g.k, v: g.v }),
    error: DTypeError,
    message: /q has dtype bool; attention needs f32 or f16/,
  },
  {
    name: 'k in f16 while q is f32',
    build: (g, make) => ({ q: g.q, k: make(filled([B, H, S, D]), [B, H, S, D], 'f16'), v: g.v }),
    error: DTypeError,
    message: /must share a dtype, got q f32, k f16, v f32/,
  },
  ...[-0.1, 1, 1.5, Number.NaN].map(
    (p): BadCase => ({
      name: `dropoutP ${p}`,
      build: (g) => ({ ...g, options: { dropoutP: p } }),
      error: InvalidArgumentError,
      message: new RegExp(`dropoutP must be in \\[0, 1\\), got ${p}`),
    }),
  ),
  {
    name: 'query length 0',
    build: (g, make) => ({ q: make([], [B, H, 0, D]), k: g.k, v: g.v }),
    error: ShapeError,
    message: /L ≥ 1 and S ≥ 1, got L = 0, S = 6/,
  },
  {
    name: 'key length 0',
    build: (g, make) => ({ q: g.q, k: make([], [B, H, 0, D]), v: make([], [B, H, 0, D]) }),
    error: ShapeError,
    message: /L ≥ 1 and S ≥ 1, got L = 5, S = 0/,
  },
  {
    name: 'batch 0',
    build: (_g, make) => ({ q: make([], [0, H, L, D]), k: make([], [0, H, S, D]), v: make([], [0, H, S, D]) }),
    error: ShapeError,
    message: /batch size is 0/,
  },
  {
    name: 'head dim 0',
    build: (_g, make) => ({ q: make([], [B, H, L, 0]), k: make([], [B, H, S, 0]), v: make([], [B, H, S, 0]) }),
    error: ShapeError,
    message: /head dims must be ≥ 1/,
  },
  {
    name: 'k on another device',
    build: (g, make) => ({ q: g.q, k: make(g.values.k, [B, H, S, D], 'f32', 'other'), v: g.v }),
    error: DeviceMismatchError,
    message: /k is on \w+ .* but q is on \w+ .*\.to\(device\)/,
  },
  {
    name: 'mask on another device',
    build: (g, make) => ({ ...g, options: { attnMask: make(filled([L, S], 1), [L, S], 'bool', 'other') } }),
    error: DeviceMismatchError,
    message: /attnMask is on \w+ .*\.to\(device\)/,
  },
  {
    name: 'disposed v',
    build: (g, make) => {
      const v = make(g.values.v, [B, H, S, D]);
      v.dispose();
      return { q: g.q, k: g.k, v };
    },
    error: DisposedTensorError,
    message: /v \[2, 2, 6, 8\] \(f32\) was used after dispose\(\)/,
  },
  {
    name: 'disposed mask',
    build: (g, make) => {
      const attnMask = make(filled([L, S], 1), [L, S], 'bool');
      attnMask.dispose();
      return { ...g, options: { attnMask } };
    },
    error: DisposedTensorError,
    message: /attnMask \[5, 6\] \(bool\) was used after dispose\(\)/,
  },
  {
    name: 'scale NaN',
    build: (g) => ({ ...g, options: { scale: Number.NaN } }),
    error: InvalidArgumentError,
    message: /scale must be a finite number, got NaN/,
  },
  {
    name: 'softcap −1',
    build: (g) => ({ ...g, options: { softcap: -1 } }),
    error: InvalidArgumentError,
    message: /softcap must be a positive finite number .* got -1/,
  },
  {
    name: 'window of 1.5',
    build: (g) => ({ ...g, options: { window: [1.5, 0] } }),
    error: InvalidArgumentError,
    message: /window left must be an integer ≥ 0, or −1 for unbounded; got 1.5/,
  },
  {
    name: 'keyLengths longer than S',
    build: (g) => ({ ...g, options: { keyLengths: [S, S + 1] } }),
    error: InvalidArgumentError,
    message: /keyLengths\[1\] = 7 must be an integer in \[0, S = 6\]/,
  },
  {
    name: 'keyLengths with one entry for two batches',
    build: (g) => ({ ...g, options: { keyLengths: [S] } }),
    error: ShapeError,
    message: /keyLengths has 1 entries, need one per batch \(B = 2\)/,
  },
];

type EntryPoint = (call: BadCall) => unknown;

function gpuEntryPoints(): Record<string, EntryPoint> {
  return {
    'scaledDotProductAttention (auto)': ({ q, k, v, options }) => scaledDotProductAttention(q, k, v, options),
    'scaledDotProductAttention (flash)': ({ q, k, v, options }) => scaledDotProductAttention(q, k, v, { ...options, backends: ['flash'] }),
    'scaledDotProductAttention (efficient)': ({ q, k, v, options }) =>
      scaledDotProductAttention(q, k, v, { ...options, backends: ['efficient'] }),
    'scaledDotProductAttention (math)': ({ q, k, v, options }) => scaledDotProductAttention(q, k, v, { ...options, backends: ['math'] }),
    explainSdpa: ({ q, k, v, options }) => explainSdpa(q, k, v, options),
    flashAttention: ({ q, k, v, options }) => flashAttention(q, k, v, options),
    splitKvAttention: ({ q, k, v, options }) => splitKvAttention(q, k, v, options),
    mathAttention: ({ q, k, v, options }) => mathAttention(q, k, v, options),
  };
}

const cpuEntryPoints: Record<string, EntryPoint> = {
  'scaledDotProductAttention (auto)': ({ q, k, v, options }) => scaledDotProductAttention(q, k, v, options),
  'scaledDotProductAttention (cpu)': ({ q, k, v, options }) => scaledDotProductAttention(q, k, v, { ...options, backends: ['cpu'] }),
  explainSdpa: ({ q, k, v, options }) => explainSdpa(q, k, v, options),
  cpuAttention: ({ q, k, v, options }) => cpuAttention(q, k, v, options),
};

/** Runs every case through every entry point; returns nothing, fails with the case and entry point named. */
async function runTable(device: Device, other: Device, entryPoints: Record<string, EntryPoint>, cases = CASES): Promise<void> {
  const good = goodInputs(device);
  const dispatched: string[] = [];
  const stop = onSdpaDispatch((event) => dispatched.push(event.backend));
  try {
    for (const kase of cases) {
      for (const [entry, call] of Object.entries(entryPoints)) {
        const made: Tensor[] = [];
        const make = (values: ArrayLike<number>, shape: number[], dtype: 'f32' | 'f16' | 'bool' = 'f32', on?: 'other') => {
          const t = tensor(on === 'other' ? other : device, values, shape, { dtype });
          made.push(t);
          return t;
        };
        const bad = kase.build(good, make);
        let thrown: unknown;
        try {
          call(bad);
        } catch (error) {
          thrown = error;
        }
        const where = `${kase.name} through ${entry} (seed ${seed})`;
        expect(thrown, `${where}: no error`).toBeInstanceOf(kase.error);
        expect((thrown as Error).message, where).toMatch(kase.message);
        made.forEach((t) => t.dispose());
      }
    }
    expect(dispatched, 'a rejected call reached a backend').toEqual([]);
  } finally {
    stop();
  }
  // Every good tensor is intact and usable: same values, and a valid call still matches the reference.
  expect(await good.q.toArray()).toEqual(good.values.q);
  expect(await good.k.toArray()).toEqual(good.values.k);
  expect(await good.v.toArray()).toEqual(good.values.v);
  const out = scaledDotProductAttention(good.q, good.k, good.v, { isCausal: true });
  const expected = attentionReference(
    { data: good.values.q, shape: [B, H, L, D] },
    { data: good.values.k, shape: [B, H, S, D] },
    { data: good.values.v, shape: [B, H, S, D] },
    { isCausal: true },
  );
  const error = maxAbsDiff(await out.toArray(), expected.out).value;
  expect(error, `valid call after the bad ones (seed ${seed})`).toBeLessThan(1e-5);
  [out, good.q, good.k, good.v].forEach((t) => t.dispose());
}

describe.skipIf(!gpu)('bad input on WebGPU', () => {
  const device = gpu!;

  it(`${CASES.length} bad calls × 8 entry points: typed errors naming the values, other tensors intact`, async () => {
    await expectNoGpuErrors(device, () => runTable(device, cpuDevice(), gpuEntryPoints()));
    await device.sync();
  });

  it('only math refuses for size: ResourceLimitError naming the bytes and the budget', async () => {
    await expectNoGpuErrors(device, async () => {
      const good = goodInputs(device);
      let thrown: unknown;
      try {
        mathAttention(good.q, good.k, good.v, {}, { memoryBudgetBytes: 256 });
      } catch (error) {
        thrown = error;
      }
      expect(thrown).toBeInstanceOf(ResourceLimitError);
      const limit = thrown as ResourceLimitError;
      expect(limit.limitBytes).toBe(256);
      expect(limit.neededBytes).toBeGreaterThan(B * H * L * S * 4);
      expect(limit.message).toMatch(/memoryBytes \d+, need ≤ 256 \(memory budget\).*raise memoryBudgetBytes or use flash/);
      // The tensors are untouched and the dispatcher still runs the problem.
      const out = scaledDotProductAttention(good.q, good.k, good.v, { backends: ['flash', 'math'] });
      expect(Array.from(await out.toArray()).every(Number.isFinite)).toBe(true);
      [out, good.q, good.k, good.v].forEach((t) => t.dispose());
    });
  });

  it('a bad call in the middle of recorded work leaves that work correct', async () => {
    await expectNoGpuErrors(device, async () => {
      const good = goodInputs(device);
      const first = scaledDotProductAttention(good.q, good.k, good.v);
      expect(() => scaledDotProductAttention(good.q, good.k, good.v, { dropoutP: 2 })).toThrow(InvalidArgumentError);
      const second = scaledDotProductAttention(good.q, good.k, good.v);
      const [a, b] = [await first.toArray(), await second.toArray()];
      expect(b).toEqual(a);
      const expected = attentionReference(
        { data: good.values.q, shape: [B, H, L, D] },
        { data: good.values.k, shape: [B, H, S, D] },
        { data: good.values.v, shape: [B, H, S, D] },
      );
      expect(maxAbsDiff(a, expected.out).value).toBeLessThan(1e-5);
      [first, second, good.q, good.k, good.v].forEach((t) => t.dispose());
    });
  });
});

interface BackwardCall {
  q: Tensor;
  k: Tensor;
  v: Tensor;
  out: Tensor;
  logsumexp: Tensor;
  gradOut: Tensor;
}

const BACKWARD_CASES: {
  name: string;
  build(good: BackwardCall, make: (shape: number[], dtype?: 'f32' | 'f16', on?: 'other') => Tensor): BackwardCall;
  error: new (...args: never[]) => WebattnError;
  message: RegExp;
}[] = [
  {
    name: 'gradOut of the wrong shape',
    build: (g, make) => ({ ...g, gradOut: make([B, H, L, D + 1]) }),
    error: ShapeError,
    message: /gradOut (has shape )?\[2, 2, 5, 9\].*\[2, 2, 5, 8\]/,
  },
  {
    name: 'gradOut of another dtype',
    build: (g, make) => ({ ...g, gradOut: make([B, H, L, D], 'f16') }),
    error: DTypeError,
    message: /gradOut has dtype f16, need f32 like q/,
  },
  {
    name: 'logsumexp of the wrong shape',
    build: (g, make) => ({ ...g, logsumexp: make([B, H, L + 1]) }),
    error: ShapeError,
    message: /logsumexp.*\[2, 2, 6\]|logsumexp.*\[2, 2, 5\]/,
  },
  {
    name: 'disposed gradOut',
    build: (g, make) => {
      const gradOut = make([B, H, L, D]);
      gradOut.dispose();
      return { ...g, gradOut };
    },
    error: DisposedTensorError,
    message: /\[2, 2, 5, 8\] \(f32\) was used after dispose\(\)/,
  },
  {
    name: 'gradOut on another device',
    build: (g, make) => ({ ...g, gradOut: make([B, H, L, D], 'f32', 'other') }),
    error: DeviceMismatchError,
    message: /CPU|GPU|another device/,
  },
  {
    name: 'q of rank 3',
    build: (g, make) => ({ ...g, q: make([H, L, D]) }),
    error: ShapeError,
    message: /has rank 3/,
  },
];

type BackwardEntry = (call: BackwardCall) => unknown;

async function runBackwardTable(device: Device, other: Device, entryPoints: Record<string, BackwardEntry>): Promise<void> {
  const good = goodInputs(device);
  const forward = device.isGpu ? mathAttention(good.q, good.k, good.v) : cpuAttention(good.q, good.k, good.v);
  const gradOut = tensor(device, randomValues(B * H * L * D, seed + 5), [B, H, L, D]);
  const call: BackwardCall = { q: good.q, k: good.k, v: good.v, out: forward.out, logsumexp: forward.logsumexp, gradOut };
  for (const kase of BACKWARD_CASES) {
    for (const [entry, run] of Object.entries(entryPoints)) {
      const made: Tensor[] = [];
      const make = (shape: number[], dtype: 'f32' | 'f16' = 'f32', on?: 'other') => {
        const t = tensor(on === 'other' ? other : device, randomValues(shape.reduce((a, b) => a * b, 1), seed + 9), shape, { dtype });
        made.push(t);
        return t;
      };
      let thrown: unknown;
      try {
        run(kase.build(call, make));
      } catch (error) {
        thrown = error;
      }
      made.forEach((t) => t.dispose());
      const where = `${kase.name} through ${entry} (seed ${seed})`;
      expect(thrown, `${where}: no error`).toBeInstanceOf(kase.error);
      expect((thrown as Error).message, where).toMatch(kase.message);
    }
  }
  // The forward's results are intact: a valid backward still runs on every entry point.
  for (const [entry, run] of Object.entries(entryPoints)) {
    const grads = run(call) as { dq: Tensor; dk: Tensor; dv: Tensor };
    for (const t of [grads.dq, grads.dk, grads.dv]) {
      expect(Array.from(await t.toArray()).every(Number.isFinite), `${entry} after the bad calls`).toBe(true);
      t.dispose();
    }
  }
  [forward.out, forward.logsumexp, gradOut, good.q, good.k, good.v].forEach((t) => t.dispose());
}

describe.skipIf(!gpu)('bad input to the backward entry points', () => {
  it(`${BACKWARD_CASES.length} bad calls through flashAttentionGrad and mathAttentionBackward`, async () => {
    await expectNoGpuErrors(gpu!, () =>
      runBackwardTable(gpu!, cpuDevice(), {
        flashAttentionGrad: (c) => flashAttentionGrad(c.q, c.k, c.v, c.out, c.logsumexp, c.gradOut),
        mathAttentionBackward: (c) => mathAttentionBackward(c.q, c.k, c.v, c.out, c.logsumexp, c.gradOut),
      }),
    );
  });

  it(`${BACKWARD_CASES.length} bad calls through cpuAttentionBackward`, async () => {
    await runBackwardTable(cpuDevice(), gpu!, {
      cpuAttentionBackward: (c) => cpuAttentionBackward(c.q, c.k, c.v, c.out, c.logsumexp, c.gradOut),
    });
  });
});

describe('bad input on CPU tensors', () => {
  it(`${CASES.length} bad calls × 4 entry points: typed errors naming the values, other tensors intact`, async () => {
    // The other device for CPU tensors is the GPU; without one the two device-mismatch cases are left to the GPU table.
    const cases = gpu ? CASES : CASES.filter((kase) => !kase.name.includes('another device'));
    await runTable(cpuDevice(), gpu ?? cpuDevice(), cpuEntryPoints, cases);
  });
});
