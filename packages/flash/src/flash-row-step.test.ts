/**
 * Backward problems whose 256 query rows of a dense mask exceed one storage binding: the backward's row chunks
 * shrink from 256 rows to 128, 64, ... down to single rows (BACKWARD_MIN_ROW_STEP), each only when nothing coarser
 * fits. A lowered binding limit (FlashRecordOptions.maxStorageBindingSize) forces them on small problems on
 * lavapipe; the forward runs unsplit. Chunks of 64 rows or more (BACKWARD_TILE_ROWS, which every dK/dV query tile
 * divides) give the unsplit bits (delta, dQ over row chunks and over key chunks, dK/dV summed over row chunks in f32
 * scratch). Smaller chunks end inside dK/dV query tiles, whose rows outside the chunk take no part: dQ keeps its
 * bits (each row computed on its own), dK/dV stay within the float64 reference's tolerance.
 */
import { gpu } from '../test/test-device';
import { describeAttention, tensor, type AttentionProblem } from '@webattn/tensor';
import { freshSeed, randomValues } from '@webattn/tensor/testing';
import { afterAll, describe, expect, it } from 'vitest';
import type { Chunk } from './binding-chunks';
import { expectCloseToReferences, expectSameBits, runRaw, type Outputs } from '../test/chunked-runs';
import { describeCase, prepare, type FlashCase, type Prepared } from '../test/flash-harness';
import { keyValueQueryTile } from './flash-backward';
import { backwardBindings, planKernelChunks, planKeyValue } from './flash-chunks';
import { recordingCaps } from './flash-forward';
import { forwardTuningKey, recordingTiles, tunedForwardTilesOf, type ForwardTiles } from './flash-tiles';

afterAll(() => gpu?.destroy());

const gradientsOf = (problem: AttentionProblem) => ({ gradOut: problem.layout.out, dq: problem.layout.q, dk: problem.layout.k, dv: problem.layout.v });

const NAMES = ['out', 'logsumexp', 'dq', 'dk', 'dv'] as const;

function expectAllSameBits(split: Outputs, whole: Outputs, context: string): void {
  for (const name of NAMES) expectSameBits(name, split[name], whole[name], context);
}

/** [heads.start, rows.start, rows.count, keys.start, keys.count] of each chunk. */
const boxes = (chunks: readonly Chunk[]) => chunks.map((c) => [c.heads.start, c.rows.start, c.rows.count, c.keys.start, c.keys.count]);

/** The backward's dQ chunks and dK/dV plan under `limit`. */
function backwardPlans(problem: AttentionProblem, limit: number) {
  const query = planKernelChunks(problem, backwardBindings(problem, gradientsOf(problem), true).query, limit);
  return { query: 'chunks' in query ? query.chunks : [], keyValue: planKeyValue(problem, gradientsOf(problem), true, limit) };
}

/** A case's tensors, its description (for messages) and its problem with gradients. */
function prepareBackward(spec: FlashCase, seed: number): { prepared: Prepared; context: string; problem: AttentionProblem } {
  const prepared = prepare(gpu!, spec, seed);
  const problem = describeAttention(prepared.q, prepared.k, prepared.v, { ...prepared.options, requiresGrad: true });
  return { prepared, context: describeCase(spec, seed), problem };
}

/** Runs `run` with `tiles` as the test device's tuned forward for f32 at `headDim` (so the backward follows it). */
async function withTunedForward(headDim: number, tiles: ForwardTiles, run: () => Promise<void>): Promise<void> {
  const key = forwardTuningKey('f32', headDim, headDim);
  tunedForwardTilesOf(gpu!.gpu).set(key, tiles);
  try {
    await run();
  } finally {
    tunedForwardTilesOf(gpu!.gpu).delete(key);
  }
}

/** The dK/dV kernel's query tile (BLOCK_M) for a problem on the test device, with its tuned forward if any. */
const queryTileOf = (problem: AttentionProblem) => keyValueQueryTile(recordingTiles(gpu!.gpu, problem, recordingCaps(gpu!.gpu, {}))!);

/** Whether some row chunk ends inside a query tile of `tile` rows (before the last row). */
const endsInsideTile = (chunks: readonly Chunk[], tile: number, rows: number) =>
  chunks.some((c) => c.rows.start + c.rows.count < rows && (c.rows.start + c.rows.count) % tile !== 0);

/**
 * Forward and backward unsplit, then with the backward under `limit` (row chunks below a dK/dV query tile): out,
 * logsumexp and dQ keep their bits; dK/dV, whose tiles' rows are summed in a different grouping, stay within the
 * float64 reference's tolerance.
 */
async function expectSubTileSplit(prepared: Prepared, problem: AttentionProblem, limit: number, context: string): Promise<void> {
  const { batch, queryHeads, queryLength, headDimV } = problem;
  const gradValues = randomValues(batch * queryHeads * queryLength * headDimV, prepared.seed + 3, -1, 1);
  const gradOut = tensor(gpu!, gradValues, [batch, queryHeads, queryLength, headDimV]);
  const whole = await runRaw(prepared, problem, gradOut);
  const split = await runRaw(prepared, problem, gradOut, { backward: limit });
  for (const name of ['out', 'logsumexp', 'dq'] as const) expectSameBits(name, split[name], whole[name], context);
  await expectCloseToReferences(split, prepared, gradOut, gradValues, 'f32', context);
  for (const t of [gradOut, prepared.q, prepared.k, prepared.v]) t.dispose();
  prepared.attnMask?.dispose();
}

/** An f32 additive mask of `count` values in [-2, 1), about a tenth −∞, never at key 0 (no row fully masked). */
const additiveMask = (count: number, keys: number, seed: number) =>
  Array.from(randomValues(count, seed, -2, 1), (x, i) => (x < -1.7 && i % keys > 0 ? Number.NEGATIVE_INFINITY : x));

// Cold shader compiles of the variants (dK/dV partial with an additive mask, the compact backward) take minutes on
// a loaded lavapipe, seconds once Mesa's shader cache has them.
describe.skipIf(!gpu)('the backward splits query rows below 256 when 256 rows of a binding exceed the limit', { timeout: 600_000 }, () => {
  it('bool mask [1, 1, L, S] over 600 keys, GQA 4/2, key lengths, causal bottom-right, dropout: 64-row chunks × key chunks give the unsplit bits', async () => {
    const device = gpu!;
    const seed = freshSeed();
    const [rows, keys] = [150, 600];
    // The variant of flash-key-chunks.test.ts' f32 case (bool mask, key lengths, dropout): its kernels, more rows.
    // Key length 430 ends inside the second key chunk; bottom-right causal rows see keys up to i + 450.
    const spec: FlashCase = {
      batch: 1,
      queryHeads: 4,
      kvHeads: 2,
      queryLength: rows,
      keyLength: keys,
      headDimQk: 40,
      mask: { shape: [1, 1, rows, keys], dtype: 'bool', data: Array.from(randomValues(rows * keys, seed + 7, 0, 1), (x) => (x < 0.2 ? 0 : 1)) },
      options: { isCausal: true, causalAlignment: 'bottom-right', dropoutP: 0.2, dropoutSeed: seed, dropoutOffset: 3, keyLengths: [430] },
    };
    const { prepared, context, problem } = prepareBackward(spec, seed);
    // The mask's 128 rows × 256 keys take 127 · 600 + 256 B (76456), 64 rows 38056; one kv head's keys 96000 B,
    // 256 of them 40960.
    const limit = 60000;
    const { query, keyValue } = backwardPlans(problem, limit);
    const perHead = [0, 64, 128].flatMap((start) => [0, 256, 512].map((key) => [start, start === 128 ? 22 : 64, key, key === 512 ? 88 : 256]));
    expect(boxes(query), context).toEqual([0, 1, 2, 3].flatMap((head) => perHead.map((box) => [head, ...box])));
    // dK/dV per kv head and key range: its two query heads × three row chunks, in the unsplit order.
    expect('partial' in keyValue && keyValue.partial.map((list) => boxes(list)), context).toEqual(
      [0, 2].flatMap((first) =>
        [0, 256, 512].map((key) => [first, first + 1].flatMap((head) => [0, 64, 128].map((start) => [head, start, start === 128 ? 22 : 64, key, key === 512 ? 88 : 256]))),
      ),
    );
    const gradValues = randomValues(4 * rows * 40, seed + 3, -1, 1);
    const gradOut = tensor(device, gradValues, [1, 4, rows, 40]);
    const whole = await runRaw(prepared, problem, gradOut);
    const split = await runRaw(prepared, problem, gradOut, { backward: limit });
    expectAllSameBits(split, whole, context);
    await expectCloseToReferences(split, prepared, gradOut, gradValues, 'f32', context);
    for (const t of [gradOut, prepared.q, prepared.k, prepared.v]) t.dispose();
    prepared.attnMask?.dispose();
  });

  it('additive f32 mask [L, S] broadcast over batch and heads, GQA 2/1, causal: 128-row chunks give the unsplit bits', async () => {
    const device = gpu!;
    const seed = freshSeed();
    const [rows, keys] = [300, 200];
    // About a tenth of the pairs removed, never key 0 (causal row 0 sees only it: no row is fully masked).
    const mask = Array.from(randomValues(rows * keys, seed + 7, -2, 1), (x, i) => (x < -1.7 && i % keys > 0 ? Number.NEGATIVE_INFINITY : x));
    const spec: FlashCase = {
      batch: 2,
      queryHeads: 2,
      kvHeads: 1,
      queryLength: rows,
      keyLength: keys,
      headDimQk: 40,
      mask: { shape: [rows, keys], dtype: 'f32', data: mask },
      options: { isCausal: true },
    };
    const { prepared, context, problem } = prepareBackward(spec, seed);
    expect(problem.mask.kind === 'additive' && problem.mask.strides, context).toEqual({ batch: 0, head: 0, row: keys, column: 1 });
    // The mask's 256 rows take 204800 B, 128 rows 102400 B; all keys of one kv head 32000 B (keys are not split).
    const limit = 150000;
    const { query, keyValue } = backwardPlans(problem, limit);
    const rowChunks = (head: number) => [
      [head, 0, 128, 0, keys],
      [head, 128, 128, 0, keys],
      [head, 256, 44, 0, keys],
    ];
    expect(boxes(query), context).toEqual([0, 1].flatMap(() => [0, 1].flatMap(rowChunks)));
    // dK/dV per batch entry's kv head: its two query heads × three row chunks.
    expect('partial' in keyValue && keyValue.partial.map(boxes), context).toEqual([0, 1].map(() => [0, 1].flatMap(rowChunks)));
    const gradValues = randomValues(2 * 2 * rows * 40, seed + 3, -1, 1);
    const gradOut = tensor(device, gradValues, [2, 2, rows, 40]);
    const whole = await runRaw(prepared, problem, gradOut);
    const split = await runRaw(prepared, problem, gradOut, { backward: limit });
    expectAllSameBits(split, whole, context);
    await expectCloseToReferences(split, prepared, gradOut, gradValues, 'f32', context);
    for (const t of [gradOut, prepared.q, prepared.k, prepared.v]) t.dispose();
    prepared.attnMask?.dispose();
  });

  it('the compact kernels: 64-row chunks of [B, L, H, D] rows inside 1024-row dQ workgroups give the unsplit bits', async () => {
    const device = gpu!;
    const seed = freshSeed();
    // flash-chunks.test.ts' problem and tuned compact forward (256 threads × 4 rows: one dQ workgroup spans 1024
    // rows); the compact dK/dV's query tiles divide 64.
    const spec: FlashCase = { batch: 1, queryHeads: 2, kvHeads: 1, queryLength: 600, keyLength: 29, headDimQk: 40, layout: 'blhd', options: { isCausal: true } };
    const { prepared, context, problem } = prepareBackward(spec, seed);
    const tuned: ForwardTiles = { kernel: 'compact', threads: Math.min(256, device.caps.maxComputeInvocationsPerWorkgroup), rowsPerThread: 4, keys: 16 };
    // One head's 128 rows in [B, L, H, D] memory take (127 · 80 + 40) · 4 B (40800), 64 rows 20320 B.
    const limit = 30000;
    const { query, keyValue } = backwardPlans(problem, limit);
    const starts = Array.from({ length: 10 }, (_, n) => n * 64);
    const rowChunks = (head: number) => starts.map((start) => [head, start, start === 576 ? 24 : 64, 0, 29]);
    expect(boxes(query), context).toEqual([0, 1].flatMap(rowChunks));
    expect('partial' in keyValue && keyValue.partial.map(boxes), context).toEqual([[0, 1].flatMap(rowChunks)]);
    const gradValues = randomValues(2 * 600 * 40, seed + 3, -1, 1);
    const gradOut = tensor(device, gradValues, [1, 2, 600, 40]);
    await withTunedForward(40, tuned, async () => {
      const whole = await runRaw(prepared, problem, gradOut);
      const split = await runRaw(prepared, problem, gradOut, { backward: limit });
      expectAllSameBits(split, whole, context);
      await expectCloseToReferences(split, prepared, gradOut, gradValues, 'f32', context);
    });
    for (const t of [gradOut, prepared.q, prepared.k, prepared.v]) t.dispose();
  });

  it('f32 mask [1, 1, L, S] over 1000 keys, GQA 4/2, key lengths, causal bottom-right: 8-row chunks inside the tiled dK/dV query tiles', async () => {
    const seed = freshSeed();
    const [rows, keys] = [50, 1000];
    // Key length 870; bottom-right causal rows see keys up to i + 950, so every row sees keys 0..869.
    const spec: FlashCase = {
      batch: 1,
      queryHeads: 4,
      kvHeads: 2,
      queryLength: rows,
      keyLength: keys,
      headDimQk: 8,
      mask: { shape: [1, 1, rows, keys], dtype: 'f32', data: additiveMask(rows * keys, keys, seed + 7) },
      options: { isCausal: true, causalAlignment: 'bottom-right', keyLengths: [870] },
    };
    const { prepared, context, problem } = prepareBackward(spec, seed);
    // The mask's 8 rows take 32000 B, 16 rows × 256 keys (15 · 1000 + 256) · 4 = 61024 B; one kv head's keys
    // 32000 B (not split).
    const limit = 36000;
    const { query, keyValue } = backwardPlans(problem, limit);
    const starts = [0, 8, 16, 24, 32, 40, 48];
    const rowChunks = (head: number) => starts.map((start) => [head, start, start === 48 ? 2 : 8, 0, keys]);
    expect(boxes(query), context).toEqual([0, 1, 2, 3].flatMap(rowChunks));
    // dK/dV per kv head: its two query heads × seven row chunks, in the unsplit order.
    expect('partial' in keyValue && keyValue.partial.map(boxes), context).toEqual([0, 2].map((first) => [first, first + 1].flatMap(rowChunks)));
    expect(endsInsideTile(query, queryTileOf(problem), rows), `query tile ${queryTileOf(problem)}; ${context}`).toBe(true);
    await expectSubTileSplit(prepared, problem, limit, context);
  });

  it('f32 mask [L, S] over 1024 keys, GQA 2/1, key lengths: single-row chunks × 256-key chunks (each row its own dispatch)', async () => {
    const seed = freshSeed();
    const [rows, keys] = [40, 1024];
    const spec: FlashCase = {
      batch: 1,
      queryHeads: 2,
      kvHeads: 1,
      queryLength: rows,
      keyLength: keys,
      headDimQk: 4,
      mask: { shape: [rows, keys], dtype: 'f32', data: additiveMask(rows * keys, keys, seed + 7) },
      options: { keyLengths: [1000] },
    };
    const { prepared, context, problem } = prepareBackward(spec, seed);
    // The mask's 2 rows × 256 keys take (1024 + 256) · 4 = 5120 B, one row 4096 B; 256 keys of k 4096 B, 512 keys
    // 8192 B: one row × 256 keys, the backward's smallest chunk.
    const limit = 5000;
    const { query, keyValue } = backwardPlans(problem, limit);
    const cells = (head: number) => Array.from({ length: rows }, (_, row) => [0, 256, 512, 768].map((key) => [head, row, 1, key, 256])).flat();
    expect(boxes(query), context).toEqual([0, 1].flatMap(cells));
    // dK/dV per key range: both query heads' rows one at a time (heads, then rows: the unsplit order).
    const perKeys = [0, 256, 512, 768].map((key) => [0, 1].flatMap((head) => Array.from({ length: rows }, (_, row) => [head, row, 1, key, 256])));
    expect('partial' in keyValue && keyValue.partial.map(boxes), context).toEqual(perKeys);
    await expectSubTileSplit(prepared, problem, limit, context);
  });

  it('the compact kernels, [B, L, H, D] rows and a per-head mask [1, 2, L, S], causal bottom-right: 4-row chunks × 256-key chunks', async () => {
    const device = gpu!;
    const seed = freshSeed();
    const [rows, keys] = [61, 600];
    const spec: FlashCase = {
      batch: 1,
      queryHeads: 2,
      kvHeads: 1,
      queryLength: rows,
      keyLength: keys,
      headDimQk: 8,
      layout: 'blhd',
      mask: { shape: [1, 2, rows, keys], dtype: 'f32', data: additiveMask(2 * rows * keys, keys, seed + 7) },
      options: { isCausal: true, causalAlignment: 'bottom-right' },
    };
    const { prepared, context, problem } = prepareBackward(spec, seed);
    const tuned: ForwardTiles = { kernel: 'compact', threads: 64, rowsPerThread: 2, keys: 16 };
    // The mask's 8 rows × 256 keys take (7 · 600 + 256) · 4 = 17824 B, 4 rows 8224 B; 256 keys of k 8192 B, 512
    // keys 16384 B.
    const limit = 12000;
    const { query, keyValue } = backwardPlans(problem, limit);
    const starts = Array.from({ length: 16 }, (_, n) => n * 4);
    const keyChunks = [[0, 256], [256, 256], [512, 88]] as const;
    const rowChunks = (head: number, key: number, count: number) => starts.map((start) => [head, start, start === 60 ? 1 : 4, key, count]);
    expect(boxes(query), context).toEqual([0, 1].flatMap((head) => starts.flatMap((start) => keyChunks.map(([key, count]) => [head, start, start === 60 ? 1 : 4, key, count]))));
    expect('partial' in keyValue && keyValue.partial.map(boxes), context).toEqual(keyChunks.map(([key, count]) => [0, 1].flatMap((head) => rowChunks(head, key, count))));
    await withTunedForward(8, tuned, async () => {
      const tile = queryTileOf(problem);
      expect(recordingTiles(device.gpu, problem, recordingCaps(device.gpu, {}))!.tiledKeyValue, context).toBeNull();
      expect(endsInsideTile(query, tile, rows), `query tile ${tile}; ${context}`).toBe(true);
      await expectSubTileSplit(prepared, problem, limit, context);
    });
  });

  it('refuses, naming the mask, when one row of it over its keys exceeds the limit (a column-major mask)', async () => {
    const device = gpu!;
    const seed = freshSeed();
    const [rows, keys] = [300, 200];
    const spec: FlashCase = { batch: 1, queryHeads: 2, kvHeads: 1, queryLength: rows, keyLength: keys, headDimQk: 40 };
    const prepared = prepare(device, spec, seed);
    // [S, L] memory seen as [L, S]: one row's keys lie L elements apart.
    const mask = tensor(device, randomValues(keys * rows, seed + 7, -2, 1), [keys, rows]).transpose(0, 1);
    const problem = describeAttention(prepared.q, prepared.k, prepared.v, { ...prepared.options, attnMask: mask, requiresGrad: true });
    expect(problem.mask.kind === 'additive' && problem.mask.strides, describeCase(spec, seed)).toEqual({ batch: 0, head: 0, row: 1, column: rows });
    const gradOut = tensor(device, randomValues(2 * rows * 40, seed + 3, -1, 1), [1, 2, rows, 40]);
    // One row × its 200 keys (the smallest chunk, forward and backward): 199 · 300 + 1 elements from row r, whose
    // window starts up to 63 elements earlier (256-byte alignment).
    const bytes = (63 + 199 * rows + 1) * 4;
    const limit = 200_000;
    // The backward's own dQ plan finds no chunk either (backwardPlans gives none).
    expect(backwardPlans(problem, limit).query, describeCase(spec, seed)).toEqual([]);
    await expect(runRaw({ ...prepared, attnMask: mask }, problem, gradOut, { backward: limit })).rejects.toThrow(
      `mask binding size ${bytes} B, need ≤ ${limit} B (maxStorageBufferBindingSize; flash splits its dispatches over batch entries, heads, query rows and keys, down to one row × one key split in the forward and one row × 256 keys in the backward`,
    );
    for (const t of [gradOut, prepared.q, prepared.k, prepared.v, mask]) t.dispose();
  });
});
