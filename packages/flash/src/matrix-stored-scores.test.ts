/**
 * The matrix backward with stored score gradients (matrix-stored-scores.ts): the matrix dK/dV writes dS as f16, dQ =
 * dS K on subgroup matrices. Its pieces and padding; then on lavapipe with the matrix builtins emulated, against the
 * matrix recompute kernels (storedScoresBytes 0) and the references: dK and dV keep their bits (the dK/dV kernel only
 * adds a store), dQ agrees with the float64 reference within the same-precision tolerance, with the scratch poisoned
 * with NaN before it runs (no piece is zeroed: dK/dV must write every pair dQ reads), including runs in several pieces
 * sharing one scratch, banded masks whose diagonals fall inside the tiles, a bool mask, dropout and packed varlen.
 */
import { gpu } from '../test/test-device';
import { describeAttention, tensor, type AttentionProblem } from '@webattn/tensor';
import { freshSeed, randomValues } from '@webattn/tensor/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { STORED_SCORE_TEST_CAPS, expectCloseToReferences, expectStoredMatches, preparePacked, runPacked, runRaw } from '../test/chunked-runs';
import { describeCase, prepare, type FlashCase } from '../test/flash-harness';
import { recordingTiles, type FlashCaps } from './flash-tiles';
import { emulateSubgroupMatrices } from './subgroup-matrix-emulation';
import { heaviestKeysFirst } from './balanced-blocks';
import { preferredMatrixKeyValueShape } from './flash-backward-key-value-matrix';
import { planMatrixStoredScores } from './matrix-stored-scores';

afterAll(() => gpu?.destroy());

const CAPS: FlashCaps = STORED_SCORE_TEST_CAPS;

const problemOf = (batch: number, queryHeads: number, kvHeads: number, queryLength: number, keyLength: number) =>
  ({ batch, queryHeads, kvHeads, queryLength, keyLength, mask: { kind: 'none' } }) as AttentionProblem;

describe('planMatrixStoredScores', () => {
  it("pads a slot to dK/dV's query tiles and key blocks (f16) and fits batch entries, else kv heads, in the budget", () => {
    const problem = problemOf(3, 8, 2, 100, 70);
    const keyValue = { subgroups: 2, rows: 32 };
    // Rows to 128 (32-row query tiles), keys to 96 (32-key blocks), 2 bytes each.
    const slot = 128 * 96 * 2;
    const whole = planMatrixStoredScores(problem, 64, keyValue, CAPS, 2 ** 30)!;
    expect(whole.pieces.map((p) => p.uniforms)).toEqual([{ ds_batch_base: 0, ds_head_base: 0, ds_slot_heads: 8, ds_keys: 96, ds_rows: 128 }]);
    expect(whole.bytes).toBe(3 * 8 * slot);
    expect(whole.query.subgroups).toBe(1);
    const heads = planMatrixStoredScores(problem, 64, keyValue, CAPS, 4 * slot)!;
    expect(heads.pieces).toHaveLength(6);
    expect(heads.pieces[3]!.uniforms).toEqual({ ds_batch_base: 1, ds_head_base: 4, ds_slot_heads: 4, ds_keys: 96, ds_rows: 128 });
    expect(planMatrixStoredScores(problemOf(1, 2, 2, 17, 33), 16, { subgroups: 1, rows: 16 }, CAPS, 2 ** 30)!.pieces[0]!.uniforms).toMatchObject({ ds_keys: 48, ds_rows: 32 });
  });

  it('keeps the recompute kernels where one kv head does not fit, the budget is 0 or the dQ kernel does not fit', () => {
    const problem = problemOf(1, 8, 2, 100, 70);
    const keyValue = { subgroups: 1, rows: 16 };
    expect(planMatrixStoredScores(problem, 64, keyValue, CAPS, 4 * 112 * 80 * 2 - 1)).toBeNull();
    expect(planMatrixStoredScores(problem, 64, keyValue, CAPS, 4 * 112 * 80 * 2)).not.toBeNull();
    expect(planMatrixStoredScores(problem, 64, keyValue, CAPS, 0)).toBeNull();
    // dQ's 16 rows × 128 dims of f32 (8.3 KB).
    expect(planMatrixStoredScores(problem, 128, keyValue, { ...CAPS, maxComputeWorkgroupStorageSize: 8192 }, 2 ** 30)).toBeNull();
    expect(planMatrixStoredScores(problem, 128, keyValue, { ...CAPS, maxComputeWorkgroupStorageSize: 16384 }, 2 ** 30)).not.toBeNull();
  });
});

const pipelines = (name: string) => [...gpu!.pipelines.keys()].filter((key) => key.startsWith(`${name}#`)).length;
const kernelCounts = () => ({ stored: pipelines('flash-backward-query-matrix-stored'), recompute: pipelines('flash-backward-query-matrix'), tiled: pipelines('flash-backward-query-stored') });

const CASES: { readonly name: string; readonly spec: (seed: number) => FlashCase; readonly pieces: 'one' | 'kv heads' }[] = [
  {
    name: 'B2 H3 L40 S33 D16, causal',
    spec: () => ({ batch: 2, queryHeads: 3, queryLength: 40, keyLength: 33, headDimQk: 16, dtype: 'f16', options: { isCausal: true } }),
    pieces: 'one',
  },
  {
    name: 'GQA 4/2, L40 S21 D16, causal bottom-right (the first 19 rows attend nothing), key padding bool mask, dropout, one kv head per piece',
    spec: (seed) => ({
      batch: 2,
      queryHeads: 4,
      kvHeads: 2,
      queryLength: 40,
      keyLength: 21,
      headDimQk: 16,
      dtype: 'f16',
      mask: { shape: [2, 1, 1, 21], dtype: 'bool', data: Array.from(randomValues(2 * 21, seed + 7, 0, 1), (x) => (x < 0.25 ? 0 : 1)) },
      options: { isCausal: true, causalAlignment: 'bottom-right', dropoutP: 0.2, dropoutSeed: seed, dropoutOffset: 3 },
    }),
    pieces: 'kv heads',
  },
  {
    name: 'L37 S70 D16, window [20, 5] bottom-right, key lengths (later rows attend nothing)',
    spec: () => ({
      batch: 2,
      queryHeads: 2,
      queryLength: 37,
      keyLength: 70,
      headDimQk: 16,
      dtype: 'f16',
      options: { window: [20, 5], causalAlignment: 'bottom-right', keyLengths: [70, 31] },
    }),
    pieces: 'one',
  },
];

describe.skipIf(!gpu)('the matrix backward with stored score gradients (emulated subgroup matrices)', { timeout: 900_000 }, () => {
  beforeAll(() => {
    if (gpu?.caps.shaderF16) emulateSubgroupMatrices(gpu.gpu);
  });

  for (const { name, spec: specOf, pieces } of CASES) {
    it(`${name}: dK and dV bits of the recompute run, dQ within the references' tolerance`, async () => {
      const device = gpu!;
      if (!device.caps.shaderF16) return;
      const seed = freshSeed();
      const spec = specOf(seed);
      const prepared = prepare(device, spec, seed);
      const context = describeCase(spec, seed);
      const problem = describeAttention(prepared.q, prepared.k, prepared.v, { ...prepared.options, requiresGrad: true });
      const tiles = recordingTiles(device.gpu, { ...problem, directKeyValues: true }, device.caps)!;
      expect(tiles.forward.kernel, context).toBe('matrix');
      const keyValue = preferredMatrixKeyValueShape(tiles, device.caps)!;
      const whole = planMatrixStoredScores(problem, tiles.headDimQk, keyValue, device.caps, 2 ** 30)!;
      const budget = pieces === 'one' ? whole.bytes : whole.bytes / (problem.batch * problem.kvHeads);
      expect(planMatrixStoredScores(problem, tiles.headDimQk, keyValue, device.caps, budget)!.pieces, context).toHaveLength(
        pieces === 'one' ? 1 : problem.batch * problem.kvHeads,
      );

      const { batch, queryHeads, queryLength: rows, headDimV: dims } = problem;
      const gradValues = randomValues(batch * queryHeads * rows * dims, seed + 3, -1, 1);
      const gradOut = tensor(device, gradValues, [batch, queryHeads, rows, dims], { dtype: 'f16' });
      const before = kernelCounts();
      const stored = await runRaw(prepared, problem, gradOut, { storedScores: budget, poisonTemporaries: true });
      const between = kernelCounts();
      expect(between.stored, `the stored-score matrix dQ ran: ${context}`).toBeGreaterThan(before.stored);
      // Every case is banded: the dK/dV grid takes its heaviest key blocks first (balanced-blocks.ts).
      expect(heaviestKeysFirst(problem), context).toBe(true);
      expect([...device.pipelines.keys()].some((key) => key.startsWith('flash-backward-key-value-matrix#') && key.split('|').includes('HEAVIEST_FIRST')), context).toBe(true);
      expect([between.recompute, between.tiled], `no other dQ ran: ${context}`).toEqual([before.recompute, before.tiled]);
      const recomputed = await runRaw(prepared, problem, gradOut, { storedScores: 0 });
      expect(kernelCounts().recompute, `the budget 0 ran the recompute matrix dQ: ${context}`).toBeGreaterThan(before.recompute);
      await expectStoredMatches(stored, recomputed, () => expectCloseToReferences(stored, prepared, gradOut, gradValues, 'f16', context), context);
      for (const t of [gradOut, prepared.q, prepared.k, prepared.v, prepared.attnMask]) t?.dispose();
    });
  }

  it('packed varlen (GQA 4/2, causal bottom-right, dropout), one kv head per piece', async () => {
    const device = gpu!;
    if (!device.caps.shaderF16) return;
    const seed = freshSeed();
    const { prepared, problem, packedRows, context } = preparePacked(device, seed, [0, 23, 23, 60], [0, 30, 41, 77], { dtype: 'f16', headDim: 16 });
    const tiles = recordingTiles(device.gpu, { ...problem, directKeyValues: true }, device.caps)!;
    expect(tiles.forward.kernel, context).toBe('matrix');
    const whole = planMatrixStoredScores(problem, tiles.headDimQk, preferredMatrixKeyValueShape(tiles, device.caps)!, device.caps, 2 ** 30)!;
    const budget = whole.bytes / (problem.batch * problem.kvHeads);
    const total = prepared.q.shape[0]!;
    const gradValues = randomValues(total * problem.queryHeads * problem.headDimV, seed + 3, -1, 1);
    const gradOut = tensor(device, gradValues, [total, problem.queryHeads, problem.headDimV], { dtype: 'f16' });
    const before = kernelCounts().stored;
    const stored = await runPacked(prepared, problem, gradOut, packedRows, { storedScores: budget, poisonTemporaries: true });
    expect(kernelCounts().stored, context).toBeGreaterThan(before);
    const recomputed = await runPacked(prepared, problem, gradOut, packedRows, { storedScores: 0 });
    await expectStoredMatches(stored, recomputed, () => expectCloseToReferences(stored, prepared, gradOut, gradValues, 'f16', context), context);
    for (const t of [gradOut, prepared.q, prepared.k, prepared.v]) t.dispose();
  });
});
