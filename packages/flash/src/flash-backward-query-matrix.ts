import type { KernelSource } from '@webattn/tensor';
import { flashMatrixKernel, type FlashVariant } from './flash-kernels';
import { SHARED_EXTRA, firstFittingMatrixShape, type FlashCaps, type FlashTiles } from './flash-tiles';
import { matrixQueryGradientBlocks } from './matrix-blocks';
import { stageQueryRows } from './chunked-rows';
import source from './flash-backward-query-matrix.wgsl?raw';

/** The matrix dQ kernel's workgroup shape: subgroups (16 query rows each) and keys per tile. */
export interface MatrixQueryShape {
  readonly subgroups: number;
  readonly keys: number;
}

/** Workgroup bytes of flash-backward-query-matrix.wgsl (its workgroup arrays). */
export function matrixQueryStorage(shape: MatrixQueryShape, headDimQk: number, headDimV: number): number {
  const rows = shape.subgroups * 16;
  const scores = rows * (Math.max(shape.keys, headDimQk) + 1) * 4;
  const products = rows * (shape.keys + 1) * 4;
  const gradients = rows * (Math.max(shape.keys, headDimQk, headDimV) + 8) * 2;
  return scores + products + gradients + SHARED_EXTRA;
}

/**
 * The matrix dQ kernel's shape for these tiles, or null: only after the matrix forward's direct form (its padded k
 * and v copies; f16 with subgroup matrices) and only up to head dim 128. Measured on the H100 (bench notes, entry
 * 16): 2 subgroups × 16 keys up to head dim 64, one subgroup × 32 keys at 128; smaller ones where those do not fit.
 */
export function matrixQueryShape(tiles: FlashTiles, caps: FlashCaps): MatrixQueryShape | null {
  if (!tiles.directKeyValues || Math.max(tiles.headDimQk, tiles.headDimV) > 128) return null;
  const shapes: MatrixQueryShape[] =
    Math.max(tiles.headDimQk, tiles.headDimV) <= 64
      ? [{ subgroups: 2, keys: 16 }, { subgroups: 1, keys: 16 }]
      : [{ subgroups: 1, keys: 32 }, { subgroups: 1, keys: 16 }];
  return firstFittingMatrixShape(shapes, (shape) => matrixQueryStorage(shape, tiles.headDimQk, tiles.headDimV), caps);
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
    },
  });
}
