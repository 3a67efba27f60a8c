/**
 * The subgroup-matrix forward (flash-forward-matrix.wgsl) on the conformance suite in f16 (and in a third of the
 * cases the backward that follows it), with the matrix builtins emulated (lavapipe has no subgroup matrices; scripts/gpu-check.ts runs
 * the real ones on the GPU machine): its indexing, barriers, lazy rescaling, masks, dropout and NaN handling.
 */
import { gpu } from '../test/test-device';
import { attentionCases, inHalfPrecision } from '@webattn/reference/testing';
import { tensor } from '@webattn/tensor';
import { expectNoGpuErrors, freshSeed, randomValues } from '@webattn/tensor/testing';
import { afterAll, describe, expect, it } from 'vitest';
import { checkFlashCase } from '../test/conformance-case';
import { flashAttention } from './flash-attention';
import { HEAD_DIM_BUCKETS, forwardTilesFit, forwardTuningKey, recordingTiles, tunedForwardTilesOf, type ForwardTiles } from './flash-tiles';
import { emulateSubgroupMatrices, withEmulatedMatrices } from './subgroup-matrix-emulation';

afterAll(() => gpu?.destroy());
let matrixCases = 0;

const cases = attentionCases.filter((kase) => kase.dtype === 'f32').map(inHalfPrecision);

describe.skipIf(!gpu?.caps.shaderF16)('subgroup-matrix forward (emulated builtins)', () => {
  it('is the f16 default for head dims up to 32 where subgroup matrices exist, with the tiled backward', () => {
    emulateSubgroupMatrices(gpu!.gpu);
    for (const headDim of [8, 16, 32]) {
      const tiles = recordingTiles(gpu!.gpu, { dtype: 'f16', headDimQk: headDim, headDimV: headDim }, gpu!.caps);
      expect(tiles?.forward.kernel).toBe('matrix');
      expect(tiles?.tiledKeyValue).not.toBeNull();
    }
    expect(recordingTiles(gpu!.gpu, { dtype: 'f16', headDimQk: 64, headDimV: 64 }, gpu!.caps)?.forward.kernel).not.toBe('matrix');
    expect(recordingTiles(gpu!.gpu, { dtype: 'f32', headDimQk: 16, headDimV: 16 }, gpu!.caps)?.forward.kernel).not.toBe('matrix');
  });

  // Every case runs the matrix forward (as a tuned choice) where one fits the device's workgroup storage (lavapipe:
  // 32 KiB, so not at head dim 128), its shape cycling through subgroups 2 and 4, row blocks 1 and 2, keys 16 and 32.
  const shapes: ForwardTiles[] = [
    { kernel: 'matrix', threads: 64, rowsPerThread: 1, keys: 32 },
    { kernel: 'matrix', threads: 64, rowsPerThread: 2, keys: 16 },
    { kernel: 'matrix', threads: 128, rowsPerThread: 1, keys: 16 },
  ];
  const useMatrixForward = (index: number) => {
    const caps = withEmulatedMatrices(gpu!.caps);
    const tuned = tunedForwardTilesOf(gpu!.gpu);
    for (const qk of HEAD_DIM_BUCKETS) {
      for (const v of HEAD_DIM_BUCKETS) {
        const fitting = [...shapes.slice(index % shapes.length), ...shapes].find((tiles) => forwardTilesFit(tiles, qk, v, caps));
        if (fitting) tuned.set(forwardTuningKey('f16', qk, v), fitting);
        else tuned.delete(forwardTuningKey('f16', qk, v));
      }
    }
  };
  const matrixFits = (headDimQk: number, headDimV: number) =>
    shapes.some((tiles) => forwardTilesFit(tiles, headDimQk, headDimV, withEmulatedMatrices(gpu!.caps)));

  cases.forEach((kase, index) => {
    it(kase.name, async () => {
      const device = gpu!;
      emulateSubgroupMatrices(device.gpu);
      useMatrixForward(index);
      // The backward that follows (the tiled or compact family, on the matrix forward's logsumexp) in every third
      // case: each compiles its own f16 kernels, slow on a cold lavapipe.
      await checkFlashCase(device, kase, {
        backward: index % 3 === 0,
        inspect: (tensors) => {
          const [headDimQk, headDimV] = [tensors.q.shape.at(-1)!, tensors.v.shape.at(-1)!];
          const kernel = recordingTiles(device.gpu, { dtype: 'f16', headDimQk, headDimV }, device.caps)?.forward.kernel;
          if (matrixFits(headDimQk, headDimV)) expect(kernel).toBe('matrix');
          else expect(kernel).not.toBe('matrix');
          if (kernel === 'matrix') matrixCases++;
        },
      });
    });
  });

  it('NaN inputs: a NaN in q row i or in a k row i may attend makes row i NaN; a NaN in v[j, d] only out[i, d] of the rows attending j', async () => {
    const device = gpu!;
    emulateSubgroupMatrices(device.gpu);
    useMatrixForward(0);
    const [L, S, D] = [40, 40, 16];
    // Causal top-left, and a bool mask removing key 3 from row 7.
    const mask = Uint8Array.from({ length: L * S }, (_, e) => (Math.floor(e / S) === 7 && e % S === 3 ? 0 : 1));
    const attends = (row: number, key: number) => key <= row && mask[row * S + key] === 1;
    const poisons = [
      { what: 'q', row: 5, column: 2, out: (row: number) => row === 5, lse: (row: number) => row === 5 },
      { what: 'k', row: 3, column: 9, out: (row: number) => attends(row, 3), lse: (row: number) => attends(row, 3) },
      { what: 'v', row: 20, column: 15, out: (row: number, column: number) => column === 15 && attends(row, 20), lse: () => false },
    ] as const;
    for (const poison of poisons) {
      const seed = freshSeed();
      const values = { q: randomValues(L * D, seed), k: randomValues(S * D, seed + 1), v: randomValues(S * D, seed + 2) };
      values[poison.what][poison.row * D + poison.column] = Number.NaN;
      const [q, k, v] = [values.q, values.k, values.v].map((data) => tensor(device, data, [1, 1, L, D], { dtype: 'f16' }));
      const attnMask = tensor(device, mask, [L, S], { dtype: 'bool' });
      const { out, logsumexp } = await expectNoGpuErrors(device, () => flashAttention(q!, k!, v!, { isCausal: true, attnMask }));
      const [outValues, lseValues] = [(await out.toArray()) as Float32Array, (await logsumexp.toArray()) as Float32Array];
      for (let e = 0; e < L * D; e++) {
        const [row, column] = [Math.floor(e / D), e % D];
        expect(Number.isNaN(outValues[e]!), `out[${row}, ${column}] = ${outValues[e]} with ${poison.what} NaN (seed ${seed})`).toBe(poison.out(row, column));
      }
      for (let row = 0; row < L; row++) {
        expect(Number.isNaN(lseValues[row]!), `logsumexp[${row}] = ${lseValues[row]} with ${poison.what} NaN (seed ${seed})`).toBe(poison.lse(row));
      }
      for (const t of [q!, k!, v!, attnMask, out, logsumexp]) t.dispose();
    }
  });

  it('ran the matrix kernel in every case whose head dims fit it (runs after the cases)', () => {
    const fitting = cases.filter((kase) => {
      const { q, v } = kase.generate(1);
      return matrixFits(q.shape.at(-1)!, v.shape.at(-1)!);
    });
    expect(fitting.length).toBeGreaterThanOrEqual(15);
    expect(matrixCases).toBe(fitting.length);
  });
});
