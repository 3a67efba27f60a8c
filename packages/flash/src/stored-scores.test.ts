/**
 * The tiled backward with stored score gradients (stored-scores.ts): dK/dV writes dS, dQ = dS K. Its pieces and
 * padding; then on the GPU, against the recompute kernels (storedScoresBytes 0) and the references: dK and dV keep
 * their bits (the dK/dV kernel only adds a store), dQ agrees with the float64 reference within the same-precision
 * tolerance, with the scratch poisoned with NaN before it runs (dK/dV must write every pair dQ reads, or the piece
 * zero its slots first where a bool mask lets dK/dV skip key blocks), including runs in several pieces sharing one
 * scratch, banded masks whose diagonals fall inside the kernels' tiles, and packed varlen.
 */
import { gpu } from '../test/test-device';
import { describeAttention, tensor, type AttentionProblem } from '@webattn/tensor';
import { freshSeed, randomValues } from '@webattn/tensor/testing';
import { afterAll, describe, expect, it } from 'vitest';
import { STORED_SCORE_TEST_CAPS, expectCloseToReferences, expectStoredMatches, preparePacked, runPacked, runRaw } from '../test/chunked-runs';
import { describeCase, prepare, type FlashCase } from '../test/flash-harness';
import { recordingTiles, type FlashCaps } from './flash-tiles';
import { emulateSubgroupMatrices } from './subgroup-matrix-emulation';
import { STORED_SCORES_BYTES, planStoredScores, storedQueryShape } from './stored-scores';

afterAll(() => gpu?.destroy());

const CAPS: FlashCaps = STORED_SCORE_TEST_CAPS;

const problemOf = (batch: number, queryHeads: number, kvHeads: number, queryLength: number, keyLength: number, mask: 'none' | 'bool' = 'none') =>
  ({ batch, queryHeads, kvHeads, queryLength, keyLength, mask: { kind: mask } }) as AttentionProblem;

describe('planStoredScores', () => {
  const keyValue = { threads: 256, rowsPerThread: 2, keyThreads: 8 };
  it('pads a slot to whole tiles of both kernels and fits batch entries, else kv heads, in the budget', () => {
    // Rows to a multiple of 64 (dQ's 16 row quads; dK/dV's 32-row query tiles), keys to 64 (dK/dV's key blocks).
    const problem = problemOf(3, 8, 2, 100, 70);
    const slot = 128 * 128 * 4;
    const whole = planStoredScores(problem, 64, keyValue, CAPS, 2 ** 30)!;
    expect(whole.pieces.map((p) => p.uniforms)).toEqual([{ ds_batch_base: 0, ds_head_base: 0, ds_slot_heads: 8, ds_keys: 128, ds_rows: 128 }]);
    expect(whole.bytes).toBe(3 * 8 * slot);
    // Two batch entries per piece.
    const batches = planStoredScores(problem, 64, keyValue, CAPS, 2 * 8 * slot + 100)!;
    expect(batches.pieces.map((p) => [p.query.batch, p.query.heads, p.keyValue.heads])).toEqual([
      [{ start: 0, count: 2 }, { start: 0, count: 8 }, { start: 0, count: 2 }],
      [{ start: 2, count: 1 }, { start: 0, count: 8 }, { start: 0, count: 2 }],
    ]);
    expect(batches.bytes).toBe(2 * 8 * slot);
    // One kv head (4 query heads) per piece: its slots start at its first query head.
    const heads = planStoredScores(problem, 64, keyValue, CAPS, 4 * slot)!;
    expect(heads.pieces).toHaveLength(6);
    expect(heads.pieces[3]!.uniforms).toEqual({ ds_batch_base: 1, ds_head_base: 4, ds_slot_heads: 4, ds_keys: 128, ds_rows: 128 });
    expect([heads.pieces[3]!.keyValue.heads, heads.pieces[3]!.query.heads]).toEqual([{ start: 1, count: 1 }, { start: 4, count: 4 }]);
  });

  it('zeroes the slots only where dK/dV may not write every pair dQ reads', () => {
    // Whole dQ row blocks (64 rows: 2 or 4 dK/dV query tiles), dQ key tiles (16) within dK/dV key blocks (64 or 32).
    expect(planStoredScores(problemOf(1, 2, 2, 100, 70), 64, keyValue, CAPS, 2 ** 30)!.clears).toBe(false);
    expect(planStoredScores(problemOf(1, 2, 2, 100, 70), 16, { threads: 128, rowsPerThread: 2, keyThreads: 4 }, CAPS, 2 ** 30)!.clears).toBe(false);
    // A bool mask lets dK/dV skip whole key blocks.
    expect(planStoredScores(problemOf(1, 2, 2, 100, 70, 'bool'), 64, keyValue, CAPS, 2 ** 30)!.clears).toBe(true);
    // 8-key blocks: a 16-key dQ tile straddles two, one of which dK/dV may not visit for the block's rows.
    expect(planStoredScores(problemOf(1, 2, 2, 100, 70), 16, { threads: 32, rowsPerThread: 1, keyThreads: 4 }, CAPS, 2 ** 30)!.clears).toBe(true);
  });

  it('keeps the recompute kernels where one kv head does not fit, or the budget is 0', () => {
    const problem = problemOf(1, 8, 2, 100, 70);
    expect(planStoredScores(problem, 64, keyValue, CAPS, 4 * 128 * 128 * 4 - 1)).toBeNull();
    expect(planStoredScores(problem, 64, keyValue, CAPS, 0)).toBeNull();
    expect(planStoredScores(problem, 64, keyValue, { ...CAPS, maxStorageBufferBindingSize: 1000 }, 2 ** 30)).toBeNull();
  });

  it('shrinks its key tile to the workgroup storage', () => {
    expect(storedQueryShape(64, CAPS)).toEqual({ dimThreads: 16, rowQuads: 16, blockN: 16 });
    expect(storedQueryShape(16, CAPS)).toEqual({ dimThreads: 4, rowQuads: 16, blockN: 16 });
    expect(storedQueryShape(256, CAPS)).toEqual({ dimThreads: 16, rowQuads: 16, blockN: 16 });
    expect(storedQueryShape(256, { ...CAPS, maxComputeWorkgroupStorageSize: 16384 })).toEqual({ dimThreads: 16, rowQuads: 16, blockN: 8 });
  });
});

/**
 * Key padding as a bool mask [B, 1, 1, S]: about a fifth of the keys removed, and in batch entries from 1 on the
 * first 128 keys: whole key blocks that dK/dV skips there (their zeroed scores stand) but not in batch entry 0.
 */
function keyPaddingMask(batch: number, keys: number, seed: number): number[] {
  return Array.from(randomValues(batch * keys, seed, 0, 1), (x, index) => (x < 0.2 || (index >= keys && index % keys < 128) ? 0 : 1));
}

const storedKernels = () => [...gpu!.pipelines.keys()].filter((key) => key.startsWith('flash-backward-query-stored#')).length;

const CASES: { readonly name: string; readonly spec: (seed: number) => FlashCase; readonly pieces: 'one' | 'kv heads'; readonly clears: boolean }[] = [
  {
    name: 'f32 GQA 4/2, L70 S150 D40, key padding bool mask, key lengths, causal bottom-right, dropout, one kv head per piece',
    spec: (seed) => ({
      batch: 2,
      queryHeads: 4,
      kvHeads: 2,
      queryLength: 70,
      keyLength: 150,
      headDimQk: 40,
      mask: { shape: [2, 1, 1, 150], dtype: 'bool', data: keyPaddingMask(2, 150, seed + 7) },
      options: { isCausal: true, causalAlignment: 'bottom-right', dropoutP: 0.2, dropoutSeed: seed, dropoutOffset: 3, keyLengths: [150, 101] },
    }),
    pieces: 'kv heads',
    clears: true,
  },
  {
    name: 'f16 (the tiled path), L130 S97 D16, window [40, 10], additive f32 mask, whole',
    spec: (seed) => ({
      batch: 2,
      queryHeads: 3,
      queryLength: 130,
      keyLength: 97,
      headDimQk: 16,
      dtype: 'f16',
      mask: { shape: [1, 3, 130, 97], dtype: 'f32', data: randomValues(3 * 130 * 97, seed + 9, -2, 2) },
      options: { window: [40, 10] },
    }),
    pieces: 'one',
    clears: false,
  },
  {
    name: 'f32 GQA 4/2, L150 S150 D16, causal, one kv head per piece',
    spec: () => ({ batch: 2, queryHeads: 4, kvHeads: 2, queryLength: 150, keyLength: 150, headDimQk: 16, options: { isCausal: true } }),
    pieces: 'kv heads',
    clears: false,
  },
  {
    name: 'f32 L100 S37 D32, causal bottom-right (the first 63 rows attend nothing), dropout, whole',
    spec: (seed) => ({
      batch: 2,
      queryHeads: 2,
      queryLength: 100,
      keyLength: 37,
      headDimQk: 32,
      options: { isCausal: true, causalAlignment: 'bottom-right', dropoutP: 0.1, dropoutSeed: seed, dropoutOffset: 5 },
    }),
    pieces: 'one',
    clears: false,
  },
  {
    name: 'f32 L45 S170 D64, window [30, 7] bottom-right, key lengths (later rows attend nothing), whole',
    spec: () => ({ batch: 2, queryHeads: 2, queryLength: 45, keyLength: 170, headDimQk: 64, options: { window: [30, 7], causalAlignment: 'bottom-right', keyLengths: [170, 120] } }),
    pieces: 'one',
    clears: false,
  },
];

describe.skipIf(!gpu)('the backward with stored score gradients', { timeout: 600_000 }, () => {
  for (const { name, spec: specOf, pieces, clears } of CASES) {
    it(`${name}: dK and dV bits of the recompute run, dQ within the references' tolerance`, async () => {
      const device = gpu!;
      const seed = freshSeed();
      const spec = specOf(seed);
      const dtype = spec.dtype ?? 'f32';
      if (dtype === 'f16' && !device.caps.shaderF16) return;
      const prepared = prepare(device, spec, seed);
      const context = describeCase(spec, seed);
      const problem = describeAttention(prepared.q, prepared.k, prepared.v, { ...prepared.options, requiresGrad: true });
      const tiles = recordingTiles(device.gpu, problem, device.caps)!;
      expect(tiles.tiledKeyValue, `the tiled dK/dV runs: ${context}`).not.toBeNull();
      const whole = planStoredScores(problem, tiles.headDimQk, tiles.tiledKeyValue!, device.caps, 2 ** 30)!;
      expect(whole.clears, `the slots are zeroed first: ${context}`).toBe(clears);
      const kvHeadBytes = whole.bytes / (problem.batch * problem.kvHeads);
      const budget = pieces === 'one' ? whole.bytes : kvHeadBytes;
      expect(planStoredScores(problem, tiles.headDimQk, tiles.tiledKeyValue!, device.caps, budget)!.pieces, context).toHaveLength(
        pieces === 'one' ? 1 : problem.batch * problem.kvHeads,
      );

      const { batch, queryHeads, queryLength: rows, headDimV: dims } = problem;
      const gradValues = randomValues(batch * queryHeads * rows * dims, seed + 3, -1, 1);
      const gradOut = tensor(device, gradValues, [batch, queryHeads, rows, dims], { dtype });
      const before = storedKernels();
      const stored = await runRaw(prepared, problem, gradOut, { storedScores: budget, poisonTemporaries: true });
      expect(storedKernels(), `the stored-score dQ kernel ran: ${context}`).toBeGreaterThan(before);
      const recomputed = await runRaw(prepared, problem, gradOut, { storedScores: 0 });
      await expectStoredMatches(stored, recomputed, () => expectCloseToReferences(stored, prepared, gradOut, gradValues, dtype, context), context);
      for (const t of [gradOut, prepared.q, prepared.k, prepared.v, prepared.attnMask]) t?.dispose();
    });
  }

  it('packed varlen (GQA 4/2, causal bottom-right, dropout), one kv head per piece', async () => {
    const device = gpu!;
    const seed = freshSeed();
    const { prepared, problem, packedRows, context } = preparePacked(device, seed, [0, 45, 45, 140], [0, 60, 83, 200]);
    const tiles = recordingTiles(device.gpu, problem, device.caps)!;
    const whole = planStoredScores(problem, tiles.headDimQk, tiles.tiledKeyValue!, device.caps, 2 ** 30)!;
    const budget = whole.bytes / (problem.batch * problem.kvHeads);
    const total = prepared.q.shape[0]!;
    const gradValues = randomValues(total * problem.queryHeads * problem.headDimV, seed + 3, -1, 1);
    const gradOut = tensor(device, gradValues, [total, problem.queryHeads, problem.headDimV]);
    const stored = await runPacked(prepared, problem, gradOut, packedRows, { storedScores: budget, poisonTemporaries: true });
    const recomputed = await runPacked(prepared, problem, gradOut, packedRows, { storedScores: 0 });
    await expectStoredMatches(stored, recomputed, () => expectCloseToReferences(stored, prepared, gradOut, gradValues, 'f32', context), context);
    for (const t of [gradOut, prepared.q, prepared.k, prepared.v]) t.dispose();
  });
  // Last: marks the device's subgroup matrices emulated for the rest of this file.
  it('the f16 backward on subgroup matrices (emulated) takes the matrix kernels, not the tiled stored-score dQ', async () => {
    const device = gpu!;
    if (!device.caps.shaderF16) return;
    emulateSubgroupMatrices(device.gpu);
    const seed = freshSeed();
    const spec: FlashCase = { batch: 1, queryHeads: 2, queryLength: 40, keyLength: 33, headDimQk: 16, dtype: 'f16', options: { isCausal: true } };
    const prepared = prepare(device, spec, seed);
    const context = describeCase(spec, seed);
    const problem = describeAttention(prepared.q, prepared.k, prepared.v, { ...prepared.options, requiresGrad: true });
    expect(recordingTiles(device.gpu, problem, device.caps)!.forward.kernel, context).toBe('matrix');
    const count = (name: string) => [...device.pipelines.keys()].filter((key) => key.startsWith(`${name}#`)).length;
    const before = { stored: count('flash-backward-query-stored'), query: count('flash-backward-query-matrix'), keyValue: count('flash-backward-key-value-matrix') };
    const gradValues = randomValues(2 * 40 * 16, seed + 3, -1, 1);
    const gradOut = tensor(device, gradValues, [1, 2, 40, 16], { dtype: 'f16' });
    const outputs = await runRaw(prepared, problem, gradOut, { storedScores: STORED_SCORES_BYTES, poisonTemporaries: true });
    expect(count('flash-backward-query-stored'), context).toBe(before.stored);
    expect(count('flash-backward-query-matrix') + count('flash-backward-key-value-matrix'), context).toBeGreaterThan(before.query + before.keyValue);
    await expectCloseToReferences(outputs, prepared, gradOut, gradValues, 'f16', context);
    for (const t of [gradOut, prepared.q, prepared.k, prepared.v]) t.dispose();
  });
});
