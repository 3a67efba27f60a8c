import { describe, expect, it } from 'vitest';
import { describeAttention } from './attention-options';
import { zeros } from './creation';
import { cpuDevice, Device } from './device';
import { Storage } from './storage';
import { Tensor } from './tensor';
import {
  DTypeError,
  DeviceMismatchError,
  DisposedTensorError,
  InvalidArgumentError,
  ShapeError,
} from './errors';

const cpu = cpuDevice();
const make = (shape: number[], dtype: 'f32' | 'f16' | 'bool' = 'f32') => zeros(cpu, shape, { dtype });

describe('describeAttention', () => {
  it('describes a plain call with PyTorch defaults', () => {
    const problem = describeAttention(make([2, 4, 5, 8]), make([2, 4, 7, 8]), make([2, 4, 7, 3]));
    expect(problem).toMatchObject({
      batch: 2,
      queryHeads: 4,
      kvHeads: 4,
      queryLength: 5,
      keyLength: 7,
      headDimQk: 8,
      headDimV: 3,
      dtype: 'f32',
      causal: false,
      causalAlignment: 'top-left',
      mask: { kind: 'none' },
      dropout: null,
      window: null,
      softcap: null,
      varlen: false,
      keyLengths: false,
    });
    expect(problem.scale).toBeCloseTo(1 / Math.sqrt(8), 15);
    expect(problem.layout.q).toEqual({ batch: 160, head: 40, sequence: 8, dim: 1, offset: 0 });
    expect(problem.layout.out).toEqual({ batch: 60, head: 15, sequence: 3, dim: 1, offset: 0 });
  });

  it('reads [B, L, H, D] memory through a permuted view without copies', () => {
    const q = make([2, 5, 4, 8]).transpose(1, 2);
    const problem = describeAttention(q, make([2, 4, 7, 8]), make([2, 4, 7, 8]));
    expect(problem.layout.q).toEqual({ batch: 160, head: 8, sequence: 32, dim: 1, offset: 0 });
  });

  it('broadcasts masks by PyTorch rules with stride 0', () => {
    const q = make([2, 3, 5, 8]);
    const kv = make([2, 3, 7, 8]);
    const ls = describeAttention(q, kv, kv, { attnMask: make([5, 7], 'bool') });
    expect(ls.mask).toEqual({
      kind: 'bool',
      dtype: 'bool',
      strides: { batch: 0, head: 0, row: 7, column: 1 },
      offset: 0,
    });
    const padding = describeAttention(q, kv, kv, { attnMask: make([2, 1, 1, 7]) });
    expect(padding.mask).toMatchObject({ kind: 'additive', strides: { batch: 7, head: 0, row: 0, column: 1 } });
  });

  it('names the shapes when a mask cannot broadcast', () => {
    const q = make([2, 3, 5, 8]);
    const kv = make([2, 3, 7, 8]);
    expect(() => describeAttention(q, kv, kv, { attnMask: make([5, 6], 'bool') })).toThrow(ShapeError);
    expect(() => describeAttention(q, kv, kv, { attnMask: make([5, 6], 'bool') })).toThrow(
      /attnMask \[5, 6\] cannot broadcast to \[B, Hq, L, S\] = \[2, 3, 5, 7\]/,
    );
    expect(() => describeAttention(q, kv, kv, { attnMask: make([1, 2, 3, 5, 7], 'bool') })).toThrow(ShapeError);
  });

  it('rejects wrong ranks and mismatched B, S and D with the shapes', () => {
    expect(() => describeAttention(make([3, 5, 8]), make([3, 7, 8]), make([3, 7, 8]))).toThrow(/rank 3.*rank 4/);
    expect(() => describeAttention(make([2, 3, 5, 8]), make([1, 3, 7, 8]), make([1, 3, 7, 8]))).toThrow(
      /same batch size.*q \[2, 3, 5, 8\], k \[1, 3, 7, 8\]/,
    );
    expect(() => describeAttention(make([2, 3, 5, 8]), make([2, 3, 7, 16]), make([2, 3, 7, 8]))).toThrow(
      /same head dim/,
    );
    expect(() => describeAttention(make([2, 3, 5, 8]), make([2, 3, 7, 8]), make([2, 3, 6, 8]))).toThrow(
      /same key length/,
    );
  });

  it('needs Hq a multiple of Hkv, and enableGqa when they differ (as PyTorch)', () => {
    const kv = make([1, 2, 7, 8]);
    expect(() => describeAttention(make([1, 3, 5, 8]), kv, kv, { enableGqa: true })).toThrow(
      /Hq = 3 is not a multiple of kv heads Hkv = 2/,
    );
    expect(() => describeAttention(make([1, 4, 5, 8]), kv, kv)).toThrow(/enableGqa: true/);
    expect(describeAttention(make([1, 4, 5, 8]), kv, kv, { enableGqa: true }).kvHeads).toBe(2);
  });

  it('rejects dropout outside [0, 1), bad windows, softcaps and scales', () => {
    const t = make([1, 1, 4, 8]);
    for (const dropoutP of [-0.1, 1, 1.5, Number.NaN]) {
      expect(() => describeAttention(t, t, t, { dropoutP })).toThrow(InvalidArgumentError);
    }
    expect(describeAttention(t, t, t, { dropoutP: 0.25, dropoutSeed: 7, dropoutOffset: 3 }).dropout).toEqual({
      p: 0.25,
      seed: 7,
      offset: 3,
    });
    expect(() => describeAttention(t, t, t, { window: [-2, 0] })).toThrow(/window left/);
    expect(() => describeAttention(t, t, t, { softcap: 0 })).toThrow(/softcap/);
    expect(() => describeAttention(t, t, t, { scale: Number.POSITIVE_INFINITY })).toThrow(/scale/);
  });

  it('rejects empty lengths, wrong dtypes, disposed tensors and mixed devices', () => {
    expect(() => describeAttention(make([1, 1, 0, 8]), make([1, 1, 4, 8]), make([1, 1, 4, 8]))).toThrow(
      /L ≥ 1 and S ≥ 1, got L = 0/,
    );
    const b = make([1, 1, 4, 8], 'bool');
    expect(() => describeAttention(b, b, b)).toThrow(DTypeError);
    const h = make([1, 1, 4, 8], 'f16');
    const f = make([1, 1, 4, 8]);
    expect(() => describeAttention(h, f, f)).toThrow(/share a dtype/);
    const gone = make([1, 1, 4, 8]);
    gone.dispose();
    expect(() => describeAttention(gone, f, f)).toThrow(DisposedTensorError);
    const other = new Device({
      kind: 'cpu',
      info: { kind: 'cpu', adapter: 'second cpu', vendor: '', architecture: '', description: '', reason: 'test' },
      caps: cpu.caps,
    });
    const elsewhere = zeros(other, [1, 1, 4, 8]);
    expect(() => describeAttention(f, elsewhere, f)).toThrow(DeviceMismatchError);
  });

  it('refuses f16 on a GPU device without shader-f16, naming the fix', () => {
    const noF16 = new Device({
      kind: 'gpu',
      info: { kind: 'gpu', adapter: 'test adapter', vendor: '', architecture: '', description: '', reason: 'test' },
      caps: { ...cpu.caps, shaderF16: false },
    });
    const half = new Tensor(Storage.onCpu(noF16, 'f16', new Float32Array(32)), [1, 1, 4, 8]);
    expect(() => describeAttention(half, half, half)).toThrow(DTypeError);
    expect(() => describeAttention(half, half, half)).toThrow(/shader-f16.*test adapter lacks; use f32/);
  });

  it('checks key lengths and packed varlen offsets', () => {
    const t = make([2, 1, 4, 8]);
    expect(describeAttention(t, t, t, { keyLengths: [4, 1] }).keyLengths).toBe(true);
    expect(() => describeAttention(t, t, t, { keyLengths: [4] })).toThrow(/one per batch/);
    expect(() => describeAttention(t, t, t, { keyLengths: [5, 1] })).toThrow(/keyLengths\[0\] = 5/);
    const q = make([9, 2, 8]);
    const k = make([12, 2, 8]);
    const problem = describeAttention(q, k, k, { cuSeqlensQ: [0, 4, 9], cuSeqlensK: [0, 7, 12] });
    expect(problem).toMatchObject({ batch: 2, queryLength: 5, keyLength: 7, varlen: true });
    expect(problem.layout.q).toEqual({ batch: 0, sequence: 16, head: 8, dim: 1, offset: 0 });
    expect(() => describeAttention(q, k, k, { cuSeqlensQ: [0, 4, 8], cuSeqlensK: [0, 7, 12] })).toThrow(
      /cuSeqlensQ ends at 8 but q has 9 rows/,
    );
    expect(() => describeAttention(q, k, k, { cuSeqlensQ: [0, 5, 4, 9], cuSeqlensK: [0, 7, 8, 12] })).toThrow(
      /non-decreasing/,
    );
    expect(() => describeAttention(q, k, k, { cuSeqlensQ: [0, 9] })).toThrow(/both cuSeqlensQ and cuSeqlensK/);
  });
});
