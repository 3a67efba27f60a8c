import { describe, expect, it } from 'vitest';
import { bindingWindow, planChunks, halvedRowSteps, shiftedOffset, stridedRange, type Chunk } from './binding-chunks';

const extent = (batch: number, heads: number, rows: number, keys = 1): Chunk => ({
  batch: { start: 0, count: batch },
  heads: { start: 0, count: heads },
  rows: { start: 0, count: rows },
  keys: { start: 0, count: keys },
});

/** Rows split in multiples of `rows`, keys not split. */
const rowSteps = (rows: number) => ({ rows, keys: 0 });

/** A contiguous [B, H, N, D] f32 tensor's bytes for a chunk (no alignment). */
const contiguousBytes = (H: number, N: number, D: number) => (chunk: Chunk) => {
  const range = stridedRange(7, [
    { stride: H * N * D, ...chunk.batch },
    { stride: N * D, ...chunk.heads },
    { stride: D, ...chunk.rows },
    { stride: 1, start: 0, count: D },
  ]);
  return [{ name: 'q', bytes: (range.end - range.first) * 4 }];
};

describe('stridedRange and bindingWindow', () => {
  it('give the elements a strided box touches and an aligned window holding them', () => {
    // [B2, H3, N5, D4] in [B, N, H, D] memory, batch 1, heads 1..2, rows 2..4.
    const range = stridedRange(10, [
      { stride: 60, start: 1, count: 1 },
      { stride: 4, start: 1, count: 2 },
      { stride: 12, start: 2, count: 3 },
      { stride: 1, start: 0, count: 4 },
    ]);
    expect(range).toEqual({ first: 10 + 60 + 4 + 24, end: 10 + 60 + 8 + 48 + 3 + 1 });
    expect(stridedRange(10, [{ stride: 5, start: 3, count: 0 }])).toEqual({ first: 10, end: 10 });
    const window = bindingWindow({ first: 1000, end: 1003 }, 2, 256);
    expect(window).toEqual({ offset: 1792, size: 2008 - 1792, shift: 896 });
    expect(bindingWindow({ first: 1000, end: 1003 }, 2, 256, 2000).size).toBe(2000 - 1792);
    // Bool masks: one byte per element, the size still whole words.
    expect(bindingWindow({ first: 300, end: 301 }, 1, 256)).toEqual({ offset: 256, size: 48, shift: 256 });
    // At least 16 bytes (the minimum binding size of an array<vec4<f32>>), also for a range a chunk does not read.
    expect(bindingWindow({ first: 512, end: 512 }, 4, 256)).toEqual({ offset: 2048, size: 16, shift: 512 });
    expect(bindingWindow({ first: 512, end: 513 }, 4, 256).size).toBe(16);
    expect(bindingWindow({ first: 512, end: 513 }, 4, 256, 2056).size).toBe(8);
  });

  it('shifts offsets with u32 wrap-around, so offset − shift + index lands on the binding', () => {
    expect(shiftedOffset(5, 3)).toBe(2);
    const wrapped = shiftedOffset(5, 1024);
    expect(wrapped).toBe(2 ** 32 - 1019);
    // The kernel's u32 arithmetic: (wrapped + 1019 + 7) mod 2^32 = 7.
    expect((wrapped + 1019 + 7) >>> 0).toBe(7);
  });
});

describe('planChunks', () => {
  it('keeps the whole problem when it fits', () => {
    const plan = planChunks(extent(3, 4, 37), 1 << 20, contiguousBytes(4, 37, 40), rowSteps(8));
    expect(plan).toEqual({ chunks: [extent(3, 4, 37)] });
  });

  it('splits batch entries first, then heads, then rows in multiples of the row step', () => {
    const bytes = contiguousBytes(4, 37, 40);
    const perHead = 37 * 40 * 4;
    const byBatch = planChunks(extent(3, 4, 37), 2 * 4 * perHead, bytes, rowSteps(8));
    expect('chunks' in byBatch && byBatch.chunks.map((c) => [c.batch.start, c.batch.count, c.heads.count])).toEqual([
      [0, 2, 4],
      [2, 1, 4],
    ]);
    const byHeads = planChunks(extent(3, 4, 37), 2 * perHead, bytes, rowSteps(8));
    expect('chunks' in byHeads && byHeads.chunks.length).toBe(6);
    expect('chunks' in byHeads && byHeads.chunks.every((c) => c.batch.count === 1 && c.heads.count === 2)).toBe(true);
    const byRows = planChunks(extent(3, 4, 37), 10 * 40 * 4, bytes, rowSteps(8));
    if (!('chunks' in byRows)) throw new Error('expected chunks');
    expect(byRows.chunks.length).toBe(3 * 4 * 5);
    expect(byRows.chunks.slice(0, 5).map((c) => [c.rows.start, c.rows.count])).toEqual([
      [0, 8],
      [8, 8],
      [16, 8],
      [24, 8],
      [32, 5],
    ]);
    for (const chunk of byRows.chunks) expect(bytes(chunk)[0]!.bytes).toBeLessThanOrEqual(10 * 40 * 4);
  });

  it('covers every (batch, head, row) exactly once', () => {
    const plan = planChunks(extent(3, 5, 29), 6 * 16 * 4, contiguousBytes(5, 29, 16), rowSteps(4));
    if (!('chunks' in plan)) throw new Error('expected chunks');
    const seen = new Uint8Array(3 * 5 * 29);
    for (const c of plan.chunks) {
      for (let b = c.batch.start; b < c.batch.start + c.batch.count; b++)
        for (let h = c.heads.start; h < c.heads.start + c.heads.count; h++)
          for (let i = c.rows.start; i < c.rows.start + c.rows.count; i++) seen[(b * 5 + h) * 29 + i]! += 1;
    }
    expect(seen.every((count) => count === 1)).toBe(true);
  });

  it('splits keys after heads, in multiples of the key step, keys innermost', () => {
    // k of one head: keys × 16 B; q: rows × 16 B.
    const bytes = (chunk: Chunk) => [
      { name: 'q', bytes: chunk.rows.count * 16 },
      { name: 'k', bytes: chunk.keys.count * 16 },
    ];
    const plan = planChunks(extent(1, 2, 40, 1000), 8000, bytes, { rows: 8, keys: 100 });
    expect('chunks' in plan && plan.chunks.map((c) => [c.heads.start, c.rows.count, c.keys.start, c.keys.count])).toEqual([
      [0, 40, 0, 500],
      [0, 40, 500, 500],
      [1, 40, 0, 500],
      [1, 40, 500, 500],
    ]);
    // Rows and keys both too large (504 rows take 8064 B): the combination with the fewest chunks (ties: fewer key splits).
    const both = planChunks(extent(1, 1, 1000, 1000), 8000, bytes, { rows: 8, keys: 100 });
    expect('chunks' in both && both.chunks.map((c) => [c.rows.start, c.rows.count, c.keys.start, c.keys.count])).toEqual([
      [0, 256, 0, 500],
      [0, 256, 500, 500],
      [256, 256, 0, 500],
      [256, 256, 500, 500],
      [512, 256, 0, 500],
      [512, 256, 500, 500],
      [768, 232, 0, 500],
      [768, 232, 500, 500],
    ]);
    // A key step at or above the key count, or 0, does not split keys.
    expect(planChunks(extent(1, 1, 8, 1000), 8000, bytes, { rows: 8, keys: 1000 })).toEqual({ overflow: { name: 'k', bytes: 16000 } });
  });

  it('covers every (batch, head, row, key) exactly once and honours `accept`', () => {
    const bytes = (chunk: Chunk) => [{ name: 'mask', bytes: chunk.rows.count * chunk.keys.count }];
    const accept = (chunk: Chunk) => chunk.rows.count * chunk.heads.count <= 4;
    const plan = planChunks(extent(2, 3, 13, 37), 60, bytes, { rows: 1, keys: 5, accept });
    if (!('chunks' in plan)) throw new Error('expected chunks');
    const seen = new Uint8Array(2 * 3 * 13 * 37);
    for (const c of plan.chunks) {
      expect(accept(c) && bytes(c)[0]!.bytes <= 60).toBe(true);
      expect(c.keys.start % 5).toBe(0);
      for (let b = c.batch.start; b < c.batch.start + c.batch.count; b++)
        for (let h = c.heads.start; h < c.heads.start + c.heads.count; h++)
          for (let i = c.rows.start; i < c.rows.start + c.rows.count; i++)
            for (let j = c.keys.start; j < c.keys.start + c.keys.count; j++) seen[((b * 3 + h) * 13 + i) * 37 + j]! += 1;
    }
    expect(seen.every((count) => count === 1)).toBe(true);
  });

  it('halves the row step down to smallestRows only when no chunk in multiples of the full step fits', () => {
    // A dense mask [rows, 1000 keys] of 4-byte elements: a chunk binds (rows − 1) · 1000 + its keys elements.
    const bytes = (chunk: Chunk) => [{ name: 'mask', bytes: ((chunk.rows.count - 1) * 1000 + chunk.keys.count) * 4 }];
    const steps = { rows: 256, smallestRows: 64, keys: 100 };
    expect(halvedRowSteps(steps)).toEqual([256, 128, 64]);
    expect(halvedRowSteps({ rows: 256, keys: 0 })).toEqual([256]);
    expect(() => halvedRowSteps({ rows: 256, smallestRows: 48, keys: 0 })).toThrow(/48 is not 256 \/ 2\^n/);
    // 256 rows take 1 MB; the full step's chunks of 300 or 256 rows do not fit 600000 B, 128 rows (508000 B) do.
    const half = planChunks(extent(1, 1, 300, 1000), 600_000, bytes, steps);
    expect('chunks' in half && half.chunks.map((c) => [c.rows.start, c.rows.count, c.keys.count])).toEqual([
      [0, 128, 1000],
      [128, 128, 1000],
      [256, 44, 1000],
    ]);
    // 64 rows × 1000 keys (256000 B) do not fit 255000 B either: 64 rows × 500 keys, the fewest chunks that fit.
    const quarter = planChunks(extent(1, 1, 300, 1000), 255_000, bytes, steps);
    expect('chunks' in quarter && quarter.chunks.map((c) => `${c.rows.start}+${c.rows.count} ${c.keys.start}+${c.keys.count}`)).toEqual(
      [0, 64, 128, 192, 256].flatMap((start) => [0, 500].map((key) => `${start}+${start === 256 ? 44 : 64} ${key}+500`)),
    );
    // A plan the full step fits is unchanged: 256-row chunks, even where smaller rows would need fewer key splits.
    const full = planChunks(extent(1, 1, 300, 1000), 1_100_000, bytes, steps);
    expect('chunks' in full && full.chunks.map((c) => [c.rows.start, c.rows.count, c.keys.count])).toEqual([
      [0, 256, 1000],
      [256, 44, 1000],
    ]);
    // Nothing fits: the overflow of the smallest chunk, 64 rows × 100 keys.
    expect(planChunks(extent(1, 1, 300, 1000), 200_000, bytes, steps)).toEqual({ overflow: { name: 'mask', bytes: (63 * 1000 + 100) * 4 } });
  });

  it('halves the row step down to single rows (smallestRows 1), chunks then ending inside any row tile', () => {
    const bytes = (chunk: Chunk) => [{ name: 'mask', bytes: ((chunk.rows.count - 1) * 1000 + chunk.keys.count) * 4 }];
    const steps = { rows: 256, smallestRows: 1, keys: 100 };
    expect(halvedRowSteps(steps)).toEqual([256, 128, 64, 32, 16, 8, 4, 2, 1]);
    // 32 rows × 100 keys (124400 B) do not fit 100000 B; 16 rows × 1000 keys (64000 B) do: 19 chunks.
    const sixteen = planChunks(extent(1, 1, 300, 1000), 100_000, bytes, steps);
    expect('chunks' in sixteen && sixteen.chunks.map((c) => [c.rows.start, c.rows.count, c.keys.count])).toEqual(
      Array.from({ length: 19 }, (_, n) => [n * 16, n === 18 ? 12 : 16, 1000]),
    );
    // 2 rows × 100 keys take 4400 B: under 4000 B only single rows fit, over all 1000 keys (4000 B).
    const single = planChunks(extent(1, 1, 5, 1000), 4000, bytes, steps);
    expect('chunks' in single && single.chunks.map((c) => [c.rows.start, c.rows.count, c.keys.count])).toEqual([0, 1, 2, 3, 4].map((row) => [row, 1, 1000]));
    // Nothing fits: the overflow of the smallest chunk, one row × 100 keys.
    expect(planChunks(extent(1, 1, 300, 1000), 399, bytes, steps)).toEqual({ overflow: { name: 'mask', bytes: 400 } });
  });

  it('reports the largest binding of the smallest chunk when nothing fits', () => {
    const bytes = (chunk: Chunk) => [
      { name: 'q', bytes: chunk.rows.count * 16 },
      { name: 'k', bytes: 5000 },
    ];
    expect(planChunks(extent(2, 2, 100), 4096, bytes, rowSteps(8))).toEqual({ overflow: { name: 'k', bytes: 5000 } });
    // Rows may not split (row step ≥ rows): one head's q is the overflow.
    expect(planChunks(extent(2, 2, 1000), 8000, (c) => [{ name: 'q', bytes: c.rows.count * 16 }], rowSteps(1000))).toEqual({ overflow: { name: 'q', bytes: 16000 } });
  });
});
