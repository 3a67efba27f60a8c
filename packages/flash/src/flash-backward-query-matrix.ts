import type { KernelSource } from '@webattn/tensor';
import { flashMatrixKernel, type FlashVariant } from './flash-kernels';
import { SHARED_EXTRA, firstFittingMatrixShape, matrixBackwardShapeValid, type FlashCaps, type FlashTiles, type MatrixQueryShape } from './flash-tiles';
import { matrixQueryGradientBlocks } from './matrix-blocks';
import { stageQueryRows, storeGradientRow } from './chunked-rows';
import source from './flash-backward-query-matrix.wgsl?raw';

/** Workgroup bytes of flash-backward-query-matrix.wgsl (its workgroup arrays). */
export function matrixQueryStorage(shape: MatrixQueryShape, headDimQk: number, headDimV: number): number {
  const rows = shape.subgroups * 16;
  const scores = rows * (Math.max(shape.keys, headDimQk) + 1) * 4;
  const products = rows * (shape.keys + 1) * 4;
  const gradients = rows * (Math.max(shape.keys, headDimQk, headDimV) + 8) * 2;
  return scores + products + gradients + SHARED_EXTRA;
}

/**
 * The matrix dQ kernel's default shapes at these head dims (buckets), the first that fits runs: one subgroup × 16
 * keys up to head dim 64 (tuneFlashBackward's choice at D16, D32 and D64 on an H200, 1.02× the 2 subgroups that entry
 * 16 of the bench notes measured on an H100; bench notes, entry 32), one subgroup × 32 keys at 128.
 */
function defaultMatrixQueryShapes(headDimQk: number, headDimV: number): MatrixQueryShape[] {
  return Math.max(headDimQk, headDimV) <= 64 ? [{ subgroups: 1, keys: 16 }] : [{ subgroups: 1, keys: 32 }, { subgroups: 1, keys: 16 }];
}

/** The first default matrix dQ shape that fits `caps` at these head dims (buckets), or null. */
export function defaultMatrixQueryShape(headDimQk: number, headDimV: number, caps: FlashCaps): MatrixQueryShape | null {
  return firstFittingMatrixShape(defaultMatrixQueryShapes(headDimQk, headDimV), (shape) => matrixQueryStorage(shape, headDimQk, headDimV), caps);
}

/** Whether `shape` runs as the matrix dQ at these head dims (buckets) on `caps`. */
export function matrixQueryFits(shape: MatrixQueryShape, headDimQk: number, headDimV: number, caps: FlashCaps): boolean {
  return matrixBackwardShapeValid(shape) && firstFittingMatrixShape([shape], (s) => matrixQueryStorage(s, headDimQk, headDimV), caps) !== null;
}

/**
 * The matrix dQ kernel's shape for these tiles, or null: only after the matrix forward's direct form (its padded k
 * and v copies; f16 with subgroup matrices) and only up to head dim 128. The device's tuned shape
 * (`tiles.matrixQuery`, tuneFlashBackward) where it fits, else the first default that fits
 * (`defaultMatrixQueryShapes`).
 */
export function matrixQueryShape(tiles: FlashTiles, caps: FlashCaps): MatrixQueryShape | null {
  const { headDimQk, headDimV } = tiles;
  if (!tiles.directKeyValues || Math.max(headDimQk, headDimV) > 128) return null;
  if (tiles.matrixQuery && matrixQueryFits(tiles.matrixQuery, headDimQk, headDimV, caps)) return tiles.matrixQuery;
  return defaultMatrixQueryShape(headDimQk, headDimV, caps);
}

/**
 * The matrix dQ kernel for a variant and shape (with the builtins emulated on a device marked for tests); `chunks`:
 * which of q, dO and dq it moves in chunks of 8 f16 (their rows allow it: rowsOfEights).
 */
export function matrixQueryKernel(
  gpu: GPUDevice,
  variant: FlashVariant,
  tiles: FlashTiles,
  shape: MatrixQueryShape,
  chunks: { readonly q: boolean; readonly gradOut: boolean; readonly dq: boolean },
): KernelSource {
  return flashMatrixKernel(gpu, 'flash-backward-query-matrix', source, variant, tiles, {
    sizes: { SUBGROUPS: shape.subgroups, BLOCK_N: shape.keys },
    flags: { Q_VEC8: chunks.q, G_VEC8: chunks.gradOut, DQ_VEC8: chunks.dq },
    snippets: {
      ...matrixQueryGradientBlocks({ qk16: tiles.headDimQk / 16, v16: tiles.headDimV / 16, keys16: shape.keys / 16 }),
      STAGE_Q: stageQueryRows({ tensor: 'q', uniforms: 'q', dims: 'HEAD_DIM_QK', valid: 'dqk', chunked: chunks.q }, '16u'),
      STAGE_GRAD_OUT: stageQueryRows({ tensor: 'grad_out', uniforms: 'g', dims: 'HEAD_DIM_V', valid: 'dvd', chunked: chunks.gradOut }, '16u'),
      STORE_DQ: storeGradientRow({ tensor: 'dq', uniforms: 'dq', dims: 'HEAD_DIM_QK', valid: 'dqk', chunked: chunks.dq }, 'query'),
    },
  });
}
