/**
 * Backward problems whose 256 query rows of a dense mask exceed one storage binding: the backward's row chunks
 * shrink from 256 rows to 128 and 64 (BACKWARD_MIN_ROW_STEP, which every dK/dV query tile divides). A lowered
 * binding limit (FlashRecordOptions.maxStorageBindingSize) forces them on small problems on lavapipe; the forward
 * runs unsplit, and the backward must give the unsplit bits (delta, dQ over row chunks and over key chunks, dK/dV
 * summed over row chunks in f32 scratch), within the float64 reference's tolerance.
 */
import { gpu } from '../test/test-device';
import { describeAttention, tensor, type AttentionProblem } from '@webattn/tensor';
import { freshSeed, randomValues } from '@webattn/tensor/testing';
import { afterAll, describe, expect, it } from 'vitest';
import type { Chunk } from './binding-chunks';
import { expectCloseToReferences, expectSameBits, runRaw, type Outputs } from '../test/chunked-runs';
import { describeCase, prepare, type FlashCase } from '../test/flash-harness';
import { BACKWARD_MIN_ROW_STEP, backwardBindings, planKernelChunks, planKeyValue } from './flash-chunks';
import { forwardTuningKey, tunedForwardTilesOf, type ForwardTiles } from './flash-tiles';

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
    const prepared = prepare(device, spec, seed);
    const context = describeCase(spec, seed);
    const problem = describeAttention(prepared.q, prepared.k, prepared.v, { ...prepared.options, requiresGrad: true });
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
    const prepared = prepare(device, spec, seed);
    const context = describeCase(spec, seed);
    const problem = describeAttention(prepared.q, prepared.k, prepared.v, { ...prepared.options, requiresGrad: true });
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
    const prepared = prepare(device, spec, seed);
    const context = describeCase(spec, seed);
    const problem = describeAttention(prepared.q, prepared.k, prepared.v, { ...prepared.options, requiresGrad: true });
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
    const key = forwardTuningKey('f32', 40, 40);
    tunedForwardTilesOf(device.gpu).set(key, tuned);
    try {
      const whole = await runRaw(prepared, problem, gradOut);
      const split = await runRaw(prepared, problem, gradOut, { backward: limit });
      expectAllSameBits(split, whole, context);
      await expectCloseToReferences(split, prepared, gradOut, gradValues, 'f32', context);
    } finally {
      tunedForwardTilesOf(device.gpu).delete(key);
    }
    for (const t of [gradOut, prepared.q, prepared.k, prepared.v]) t.dispose();
  });

  it('refuses, naming the mask, when even 64 rows of it exceed the limit', async () => {
    const device = gpu!;
    const seed = freshSeed();
    const spec: FlashCase = { batch: 1, queryHeads: 2, kvHeads: 1, queryLength: 300, keyLength: 200, headDimQk: 40, mask: { shape: [300, 200], dtype: 'f32', data: randomValues(300 * 200, seed + 7, -2, 1) } };
    const prepared = prepare(device, spec, seed);
    const problem = describeAttention(prepared.q, prepared.k, prepared.v, { ...prepared.options, requiresGrad: true });
    const gradOut = tensor(device, randomValues(2 * 300 * 40, seed + 3, -1, 1), [1, 2, 300, 40]);
    // 64 rows × 200 keys of the mask: (63 · 200 + 200) · 4 B.
    const bytes = BACKWARD_MIN_ROW_STEP * 200 * 4;
    await expect(runRaw(prepared, problem, gradOut, { backward: bytes - 4 })).rejects.toThrow(
      `mask binding size ${bytes} B, need ≤ ${bytes - 4} B (maxStorageBufferBindingSize; flash splits its dispatches over batch entries, heads, query rows and keys, down to one row × one key split in the forward and 64 rows × 256 keys in the backward`,
    );
    for (const t of [gradOut, prepared.q, prepared.k, prepared.v]) t.dispose();
    prepared.attnMask?.dispose();
  });
});
