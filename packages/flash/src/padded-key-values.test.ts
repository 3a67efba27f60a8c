/**
 * When the matrix kernels' padded copies may serve a problem (no GPU needed): packed varlen sequences are unpacked
 * to the longest, which is refused where it would more than double the rows (a few long sequences among many short
 * ones), and the copies must fit one binding; when the forward may read k where it is.
 */
import { bhndLayout, bnhdLayout, type AttentionLayout, type AttentionProblem } from '@webattn/tensor';
import { describe, expect, it } from 'vitest';
import { keysReadInPlace, paddedKeyRows, paddedKeyValuesUnavailable, unpackedVarlenExcess } from './padded-key-values';
import type { FlashCaps } from './flash-tiles';
import { testProblem } from '../test/test-problem';

const caps: FlashCaps = {
  shaderF16: true,
  maxComputeWorkgroupStorageSize: 49152,
  maxComputeInvocationsPerWorkgroup: 1024,
  maxComputeWorkgroupsPerDimension: 65535,
  maxStorageBufferBindingSize: 2 ** 31 - 4,
  maxStorageBuffersPerShaderStage: 16,
};

/** A packed [total, H, D] layout: a row is H · D elements. */
const packedLayout = (heads: number, dims: number): AttentionLayout => ({ batch: 0, head: dims, sequence: heads * dims, dim: 1, offset: 0 });

/** f16 varlen problem of `batch` sequences, the longest `longest` rows, 2 kv heads of 64 dims. */
const varlenProblem = (batch: number, longest: number): AttentionProblem =>
  testProblem(
    {
      batch,
      queryHeads: 4,
      kvHeads: 2,
      queryLength: longest,
      keyLength: longest,
      headDimQk: 64,
      headDimV: 64,
      dtype: 'f16',
      scale: 0.125,
      layout: { q: packedLayout(4, 64), k: packedLayout(2, 64), v: packedLayout(2, 64), out: packedLayout(4, 64) },
    },
    { varlen: true, requiresGrad: true },
  );

/** A stand-in buffer of `rows` packed rows of 2 heads × 64 dims in f16 (only its size is read). */
const packedBuffer = (rows: number) => ({ size: rows * 2 * 64 * 2 }) as GPUBuffer;

describe('padded copies of packed varlen problems', () => {
  it('unpack sequences of similar lengths (4 of 500–1000 rows: 4096 padded rows against 3000 packed)', () => {
    const problem = varlenProblem(4, 1000);
    const buffer = packedBuffer(3000);
    expect(unpackedVarlenExcess(problem, problem.layout.k, 1000, buffer)).toBeNull();
    expect(paddedKeyValuesUnavailable(problem, 64, 64, caps, { k: buffer, v: buffer })).toBeNull();
  });

  it('refuse to unpack one long sequence among many short ones (1 of 1000 rows and 99 of 10: 102400 rows against 1990)', () => {
    const problem = varlenProblem(100, 1000);
    const buffer = packedBuffer(1990);
    const why = unpackedVarlenExcess(problem, problem.layout.k, 1000, buffer);
    expect(why).toMatch(/102400 rows a head.*more than twice the 1990 packed rows/);
    expect(paddedKeyValuesUnavailable(problem, 64, 64, caps, { k: buffer, v: buffer })).toBe(why);
  });

  it('leave dense problems to the binding checks alone', () => {
    const problem: AttentionProblem = {
      ...varlenProblem(100, 1000),
      varlen: false,
      layout: { q: bhndLayout(4, 1000, 64), k: bhndLayout(2, 1000, 64), v: bhndLayout(2, 1000, 64), out: bhndLayout(4, 1000, 64) },
    };
    const buffer = packedBuffer(10);
    expect(unpackedVarlenExcess(problem, problem.layout.k, 1000, buffer)).toBeNull();
    expect(paddedKeyValuesUnavailable(problem, 64, 64, caps, { k: buffer, v: buffer })).toBeNull();
    expect(paddedKeyValuesUnavailable(problem, 64, 64, { ...caps, maxStorageBufferBindingSize: 2 ** 20 }, { k: buffer, v: buffer })).toMatch(/beyond one binding/);
  });
});

describe('the forward reading k in place', () => {
  // B2 Hkv3 S45 D16 f16 in [B, H, S, D]: with 16-key tiles the last head's last tile ends at row 48 of that head.
  const [B, H, S, D] = [2, 3, 45, 16];
  const dense = (layout: AttentionLayout, headDim = D, overrides: Partial<AttentionProblem> = {}) =>
    testProblem(
      { batch: B, queryHeads: H, kvHeads: H, queryLength: 7, keyLength: S, headDimQk: headDim, headDimV: headDim, dtype: 'f16', scale: 0.25, layout: { q: layout, k: layout, v: layout, out: layout } },
      overrides,
    );
  const rows = paddedKeyRows(S, 16);
  const bytes = (elements: number) => ({ size: elements * 2 }) as GPUBuffer;
  const lastTileEnd = ((B * H - 1) * S + rows) * D;
  const limit = caps.maxStorageBufferBindingSize;

  it('when every tile, the last head\'s last included, lies inside the binding', () => {
    const problem = dense(bhndLayout(H, S, D));
    expect(rows).toBe(48);
    expect(keysReadInPlace(problem, bytes(lastTileEnd), rows, D, limit)).toBe(true);
    // An exactly sized k: the last tile would reach 3 rows past the end.
    expect(keysReadInPlace(problem, bytes(B * H * S * D), rows, D, limit)).toBe(false);
    expect(keysReadInPlace(problem, bytes(lastTileEnd - 1), rows, D, limit)).toBe(false);
    // The binding limit, not the buffer, can be what is short; an offset moves the end.
    expect(keysReadInPlace(problem, bytes(lastTileEnd * 2), rows, D, lastTileEnd * 2 - 4)).toBe(false);
    expect(keysReadInPlace(dense(bhndLayout(H, S, D, 8)), bytes(lastTileEnd), rows, D, limit)).toBe(false);
    expect(keysReadInPlace(dense(bhndLayout(H, S, D, 8)), bytes(lastTileEnd + 8), rows, D, limit)).toBe(true);
    // Heads further apart than their keys (a view of longer rows): the slack between them is read, not past the end.
    const spread: AttentionLayout = { batch: H * 64 * D, head: 64 * D, sequence: D, dim: 1, offset: 0 };
    expect(keysReadInPlace(dense(spread), bytes(((B * H - 1) * 64 + rows) * D), rows, D, limit)).toBe(true);
  });

  it('only for rows dense at the compiled head dim, and not for packed varlen', () => {
    const big = bytes(10 * lastTileEnd);
    // [B, S, H, D] memory: a row of one head is not next to the head's next row.
    expect(keysReadInPlace(dense(bnhdLayout(H, S, D)), big, rows, D, limit)).toBe(false);
    // Head dim 24 compiles as 32: its rows would need padding.
    expect(keysReadInPlace(dense(bhndLayout(H, S, 24), 24), big, rows, 32, limit)).toBe(false);
    expect(keysReadInPlace(dense(bhndLayout(H, S, 32), 32), big, rows, 32, limit)).toBe(true);
    // Dims not adjacent (a transposed view).
    expect(keysReadInPlace(dense({ ...bhndLayout(H, S, D), sequence: 1, dim: S }), big, rows, D, limit)).toBe(false);
    expect(keysReadInPlace(dense(bhndLayout(H, S, D), D, { varlen: true }), big, rows, D, limit)).toBe(false);
  });
});
