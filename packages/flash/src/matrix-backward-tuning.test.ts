/**
 * The matrix backward's workgroup shapes (flash-backward-query-matrix.wgsl, flash-backward-key-value-matrix.wgsl)
 * as tuneFlashBackward chooses them after the f16 matrix forward: which shapes are offered and taken, the search
 * itself, saved choices restored, and the gradients at shapes far from the defaults against the float64 reference,
 * with the matrix builtins emulated (lavapipe has no subgroup matrices; scripts/gpu-check.ts runs the real ones).
 * Its own file: emulation stays on for the test device once set.
 */
import { gpu } from '../test/test-device';
import { attentionCases, inHalfPrecision } from '@webattn/reference/testing';
import { afterAll, describe, expect, it } from 'vitest';
import { checkFlashCase } from '../test/conformance-case';
import { matrixBackwardShapes } from './flash-backward';
import { chooseTiles, forwardTuningKey, recordingTiles, tunedBackwardShapes, tunedBackwardShapesOf, type MatrixBackwardShapes } from './flash-tiles';
import { matrixBackwardCandidates, restoreFlashBackwardTuning, tuneFlashBackward, type SavedBackwardTuning } from './flash-tuning';
import { emulateSubgroupMatrices, withEmulatedMatrices } from './subgroup-matrix-emulation';

afterAll(() => gpu?.destroy());

const f16Direct = (headDim: number) => ({ dtype: 'f16' as 'f16' | 'f32', headDimQk: headDim, headDimV: headDim, directKeyValues: true });

describe.skipIf(!gpu?.caps.shaderF16)('matrix backward shapes', () => {
  it('takes tuned shapes only after the direct matrix forward and only where they fit; else the defaults', () => {
    const caps = withEmulatedMatrices(gpu!.caps);
    const big = { ...caps, maxComputeWorkgroupStorageSize: 65536, maxComputeInvocationsPerWorkgroup: 256 };
    const tuned: MatrixBackwardShapes = { query: { subgroups: 4, keys: 64 }, keyValue: { subgroups: 2, rows: 32 } };
    const backward = { matrixQuery: tuned.query, matrixKeyValue: tuned.keyValue };
    const defaults = matrixBackwardShapes(chooseTiles(f16Direct(64), big)!, big);
    expect(defaults).toEqual({ query: { subgroups: 1, keys: 16 }, keyValue: { subgroups: 1, rows: 16 } });
    const tiles = chooseTiles(f16Direct(64), big, undefined, backward)!;
    expect([tiles.matrixQuery, tiles.matrixKeyValue]).toEqual([tuned.query, tuned.keyValue]);
    expect(matrixBackwardShapes(tiles, big)).toEqual(tuned);
    // No matrix backward: f32, or k and v not copied (the staged matrix forward's backward is tiled).
    expect(chooseTiles({ ...f16Direct(64), dtype: 'f32' }, big, undefined, backward)).toMatchObject({ matrixQuery: null, matrixKeyValue: null });
    const staged = chooseTiles({ ...f16Direct(16), directKeyValues: false }, big, undefined, backward)!;
    expect(staged.forward.kernel).toBe('matrix');
    expect(matrixBackwardShapes(staged, big)).toBeNull();
    // Too large for 16 KiB of workgroup storage (dQ 4 × 64: 42 KiB at D64), or not a shape the kernels compile: defaults.
    const small = { ...big, maxComputeWorkgroupStorageSize: 16384 };
    expect(matrixBackwardShapes(chooseTiles(f16Direct(64), small, undefined, backward)!, small)?.query).toEqual(defaults!.query);
    const odd = { matrixQuery: { subgroups: 8, keys: 16 }, matrixKeyValue: { subgroups: 1, rows: 128 } };
    expect(matrixBackwardShapes(chooseTiles(f16Direct(64), big, undefined, odd)!, big)).toEqual(defaults);
  });

  it('offers every subgroups × tile shape that fits the device, the defaults among them', () => {
    const device = Object.create(gpu!, { caps: { value: withEmulatedMatrices(gpu!.caps) } }) as NonNullable<typeof gpu>;
    for (const headDim of [16, 64, 128]) {
      const { query, keyValue } = matrixBackwardCandidates(device, headDim);
      const defaults = matrixBackwardShapes(chooseTiles(f16Direct(headDim), device.caps)!, device.caps);
      if (defaults) {
        expect(query).toContainEqual(defaults.query);
        expect(keyValue).toContainEqual(defaults.keyValue);
      }
      for (const shape of [...query, ...keyValue]) {
        expect([1, 2, 4]).toContain(shape.subgroups);
        expect(shape.subgroups * 32).toBeLessThanOrEqual(device.caps.maxComputeInvocationsPerWorkgroup);
      }
      // Each offered shape is taken as the tuned one.
      for (const [q, kv] of query.map((shape, index) => [shape, keyValue[index % keyValue.length]!] as const)) {
        const tiles = chooseTiles(f16Direct(headDim), device.caps, undefined, { matrixQuery: q, matrixKeyValue: kv })!;
        expect(matrixBackwardShapes(tiles, device.caps)).toEqual({ query: q, keyValue: kv });
      }
    }
    // lavapipe's 32 KiB hold 16-key tiles on 4 subgroups at D64 but not 64-key ones.
    const { query } = matrixBackwardCandidates(device, 64);
    if (device.caps.maxComputeWorkgroupStorageSize === 32768) {
      expect(query).toContainEqual({ subgroups: 4, keys: 16 });
      expect(query).not.toContainEqual({ subgroups: 4, keys: 64 });
    }
  });
});

describe.skipIf(!gpu?.caps.shaderF16)('matrix backward autotuning (emulated builtins)', () => {
  // (lavapipe compiles the emulated matrix kernels slowly: one head dim, the plain variant, few shapes; the conformance
  // case below is plain too, so it reuses the searched shapes' pipelines. scripts/gpu-check.ts runs every case at
  // cycling shapes on the real builtins: WEBATTN_CHECK_MATRIX_BACKWARD=1.)
  it('times each kernel’s shapes (the defaults too) after the matrix forward, keeps the fastest (unmasked only), later backwards run them; saved choices restore; gradients at 2 subgroups × 64-wide tiles match the reference', async () => {
    const device = gpu!;
    emulateSubgroupMatrices(device.gpu);
    const caps = withEmulatedMatrices(device.caps);
    const tiles = recordingTiles(device.gpu, f16Direct(16), device.caps)!;
    expect(tiles.forward.kernel).toBe('matrix');
    const defaults = matrixBackwardShapes(tiles, caps)!;
    const wide: MatrixBackwardShapes = { query: { subgroups: 2, keys: 64 }, keyValue: { subgroups: 2, rows: 64 } };
    const keyValue = [wide.keyValue, defaults.keyValue];
    try {
      // (Unmasked only: causal: false, which flash-tuning.test.ts leaves on; lavapipe would compile each emulated kernel twice.)
      const results = await tuneFlashBackward(device, { headDims: [16], dtypes: ['f16'], shape: [1, 2, 48], iterations: 1, causal: false, matrixCandidates: { query: [wide.query], keyValue } });
      expect(results).toHaveLength(1);
      const tuning = results[0]!;
      if (tuning.kernel !== 'matrix') throw new Error(`tuned the ${tuning.kernel} backward`);
      expect(tuning.defaultShapes).toEqual(defaults);
      expect(tuning.candidates.query.map((candidate) => candidate.shape)).toEqual([defaults.query, wide.query]);
      // The default, listed, is timed once.
      expect(tuning.candidates.keyValue.map((candidate) => candidate.shape)).toEqual(keyValue);
      for (const kernel of ['query', 'keyValue'] as const) {
        const times: readonly { shape: object; ms: number; causalMs: number | null }[] = tuning.candidates[kernel];
        for (const candidate of times) {
          expect(candidate.ms).toBeGreaterThan(0);
          expect(candidate.causalMs).toBeNull();
        }
        expect(tuning.chosen[kernel]).toEqual(times.reduce((a, b) => (b.ms < a.ms ? b : a)).shape);
      }
      expect(tunedBackwardShapes(device.gpu, 'f16', 16, 16)).toEqual({ matrixQuery: tuning.chosen.query, matrixKeyValue: tuning.chosen.keyValue });
      expect(matrixBackwardShapes(recordingTiles(device.gpu, f16Direct(16), device.caps)!, caps)).toEqual(tuning.chosen);
      // Every timed shape ran: its pipelines were built.
      const built = (name: string, sizes: string) => [...device.pipelines.keys()].some((key) => key.startsWith(name) && key.includes(sizes));
      for (const { shape } of tuning.candidates.query) expect(built('flash-backward-query-matrix', `SUBGROUPS=${shape.subgroups}|BLOCK_N=${shape.keys}`)).toBe(true);
      for (const { shape } of tuning.candidates.keyValue) expect(built('flash-backward-key-value-matrix', `SUBGROUPS=${shape.subgroups}|BLOCK_M=${shape.rows}`)).toBe(true);
      // Saved as JSON and restored; matrix shapes for f32 and shapes the kernels do not compile are skipped.
      const saved = JSON.parse(JSON.stringify(results)) as SavedBackwardTuning[];
      tunedBackwardShapesOf(device.gpu).clear();
      const f32 = { ...saved[0]!, dtype: 'f32' } as SavedBackwardTuning;
      const odd: SavedBackwardTuning = { kernel: 'matrix', dtype: 'f16', headDim: 64, chosen: { query: { subgroups: 8, keys: 16 }, keyValue: defaults.keyValue } };
      expect(restoreFlashBackwardTuning(device, [...saved, f32, odd])).toBe(1);
      expect(tunedBackwardShapes(device.gpu, 'f16', 16, 16)).toEqual({ matrixQuery: tuning.chosen.query, matrixKeyValue: tuning.chosen.keyValue });
      expect(tunedBackwardShapes(device.gpu, 'f32', 16, 16)).toBeUndefined();
      expect(tunedBackwardShapes(device.gpu, 'f16', 64, 64)).toBeUndefined();
      // The wide shapes (several subgroups, 64-key dQ tiles, 64-row dK/dV tiles, so padded q and dO copies of whole
      // 64-row tiles) against the float64 reference, on a case of 17 rows and 33 keys with logits of ±1e4.
      tunedBackwardShapesOf(device.gpu).set(forwardTuningKey('f16', 16, 16), { matrixQuery: wide.query, matrixKeyValue: wide.keyValue });
      const kase = attentionCases.map(inHalfPrecision).find((candidate) => candidate.name.startsWith('large logits ±1e4'))!;
      expect(kase.generate(1).q.shape.at(-1)).toBe(16);
      const before = new Set(device.pipelines.keys());
      await checkFlashCase(device, kase, { backward: true });
      // It ran the searched shapes' kernels: no other flash kernel was built (the test's poison fill may be).
      const added = device.pipelines.keys().filter((key) => !before.has(key));
      expect(added.filter((key) => key.startsWith('flash'))).toEqual([]);
    } finally {
      tunedBackwardShapesOf(device.gpu).clear();
    }
  }, 1_200_000);
});
