import type { AttentionLayout, AttentionProblem, KernelSource } from '@webattn/tensor';
import { paddedCopyUnavailable } from './padded-key-values';
import { flashMatrixKernel, type FlashVariant } from './flash-kernels';
import { firstFittingMatrixShape, type FlashCaps, type FlashTiles } from './flash-tiles';
import { matrixKeyValueGradientBlocks } from './matrix-blocks';
import { storeKeyRow } from './chunked-rows';
import source from './flash-backward-key-value-matrix.wgsl?raw';

/** The matrix dK/dV kernel's workgroup shape: subgroups (16 keys each) and query rows per tile. */
export interface MatrixKeyValueShape {
  readonly subgroups: number;
  readonly rows: number;
}

/** Workgroup bytes of flash-backward-key-value-matrix.wgsl (its workgroup arrays). */
export function matrixKeyValueStorage(shape: MatrixKeyValueShape, headDimQk: number, headDimV: number): number {
  const keys = shape.subgroups * 16;
  const scores = keys * (Math.max(shape.rows, headDimQk, headDimV) + 1) * 4;
  const products = keys * (shape.rows + 1) * 4;
  const weights = 2 * keys * (shape.rows + 8) * 2;
  return scores + products + weights + keys * 4 + 32;
}

/**
 * The matrix dK/dV kernel's shape, or null: only after the matrix forward's direct form, up to head dim 128, and
 * where padded copies of q and dO (`gradOut`: its layout) can be made (`paddedCopyUnavailable`). Measured on the
 * H100 (bench notes, entry 16): one subgroup × 16-row tiles up to head dim 64, 2 subgroups × 16 rows at 128; one
 * subgroup where that does not fit.
 */
export function matrixKeyValueShape(
  problem: AttentionProblem,
  gradOut: AttentionLayout,
  tiles: FlashTiles,
  caps: FlashCaps,
  buffers: { readonly q: GPUBuffer; readonly gradOut: GPUBuffer },
): MatrixKeyValueShape | null {
  if (!tiles.directKeyValues || Math.max(tiles.headDimQk, tiles.headDimV) > 128) return null;
  const { layout, queryHeads, queryLength } = problem;
  const rows = Math.ceil(queryLength / 16) * 16;
  const limit = caps.maxStorageBufferBindingSize;
  const q = { buffer: buffers.q, layout: layout.q, heads: queryHeads, length: queryLength, dims: problem.headDimQk };
  const dO = { buffer: buffers.gradOut, layout: gradOut, heads: queryHeads, length: queryLength, dims: problem.headDimV };
  if (paddedCopyUnavailable(problem, q, rows, tiles.headDimQk, limit) || paddedCopyUnavailable(problem, dO, rows, tiles.headDimV, limit)) return null;
  const shapes: MatrixKeyValueShape[] =
    Math.max(tiles.headDimQk, tiles.headDimV) <= 64 ? [{ subgroups: 1, rows: 16 }] : [{ subgroups: 2, rows: 16 }, { subgroups: 1, rows: 16 }];
  return firstFittingMatrixShape(shapes, (shape) => matrixKeyValueStorage(shape, tiles.headDimQk, tiles.headDimV), caps);
}

/**
 * The matrix dK/dV kernel for a variant and shape (with the builtins emulated on a device marked for tests); `chunks`:
 * whether it writes dk and dv in chunks of 8 f16 (their rows allow it: rowsOfEights).
 */
export function matrixKeyValueKernel(
  gpu: GPUDevice,
  variant: FlashVariant,
  tiles: FlashTiles,
  shape: MatrixKeyValueShape,
  chunks: { readonly dk: boolean; readonly dv: boolean },
): KernelSource {
  return flashMatrixKernel(gpu, 'flash-backward-key-value-matrix', source, variant, tiles, {
    sizes: { SUBGROUPS: shape.subgroups, BLOCK_M: shape.rows },
    flags: { DK_VEC8: chunks.dk, DV_VEC8: chunks.dv },
    snippets: {
      ...matrixKeyValueGradientBlocks({ qk16: tiles.headDimQk / 16, v16: tiles.headDimV / 16, rows16: shape.rows / 16 }),
      STORE_DK: storeKeyRow({ tensor: 'dk', uniforms: 'dk', dims: 'HEAD_DIM_QK', valid: 'params.head_dim_qk', chunked: chunks.dk }),
      STORE_DV: storeKeyRow({ tensor: 'dv', uniforms: 'dv', dims: 'HEAD_DIM_V', valid: 'params.head_dim_v', chunked: chunks.dv }),
    },
  });
}
