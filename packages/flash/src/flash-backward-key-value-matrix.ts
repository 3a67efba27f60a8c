import type { AttentionLayout, AttentionProblem, KernelSource } from '@webattn/tensor';
import { paddedCopyUnavailable } from './padded-key-values';
import { flashMatrixKernel, type FlashVariant } from './flash-kernels';
import { firstFittingMatrixShape, matrixBackwardShapeValid, type FlashCaps, type FlashTiles, type MatrixKeyValueShape } from './flash-tiles';
import { matrixKeyValueGradientBlocks } from './matrix-blocks';
import { storeGradientRow } from './chunked-rows';
import source from './flash-backward-key-value-matrix.wgsl?raw';

/** Workgroup bytes of flash-backward-key-value-matrix.wgsl (its workgroup arrays). */
export function matrixKeyValueStorage(shape: MatrixKeyValueShape, headDimQk: number, headDimV: number): number {
  const keys = shape.subgroups * 16;
  const scores = keys * (Math.max(shape.rows, headDimQk, headDimV) + 1) * 4;
  // dP rows: 2 elements of padding at head dim 32, 1 elsewhere (DP_STRIDE).
  const productsPad = Math.max(headDimQk, headDimV) === 32 ? 2 : 1;
  const products = keys * (shape.rows + productsPad) * 4;
  const weights = 2 * keys * (shape.rows + 2) * 2;
  return scores + products + weights + keys * 4 + 32;
}

/**
 * The matrix dK/dV kernel's default shapes at these head dims (buckets), the first that fits runs. Measured on the
 * H100 (bench notes, entry 16): one subgroup × 16-row tiles up to head dim 64, 2 subgroups × 16 rows at 128.
 */
function defaultMatrixKeyValueShapes(headDimQk: number, headDimV: number): MatrixKeyValueShape[] {
  return Math.max(headDimQk, headDimV) <= 64 ? [{ subgroups: 1, rows: 16 }] : [{ subgroups: 2, rows: 16 }, { subgroups: 1, rows: 16 }];
}

/** The first default matrix dK/dV shape that fits `caps` at these head dims (buckets), or null (its q and dO copies aside). */
export function defaultMatrixKeyValueShape(headDimQk: number, headDimV: number, caps: FlashCaps): MatrixKeyValueShape | null {
  return firstFittingMatrixShape(defaultMatrixKeyValueShapes(headDimQk, headDimV), (shape) => matrixKeyValueStorage(shape, headDimQk, headDimV), caps);
}

/** Whether `shape` runs as the matrix dK/dV at these head dims (buckets) on `caps` (its q and dO copies aside). */
export function matrixKeyValueFits(shape: MatrixKeyValueShape, headDimQk: number, headDimV: number, caps: FlashCaps): boolean {
  return matrixBackwardShapeValid(shape) && firstFittingMatrixShape([shape], (s) => matrixKeyValueStorage(s, headDimQk, headDimV), caps) !== null;
}

/**
 * The matrix dK/dV kernel's shape, or null: only after the matrix forward's direct form, up to head dim 128, and
 * where padded copies of q and dO (`gradOut`: its layout) can be made (`paddedCopyUnavailable`). The device's tuned
 * shape (`tiles.matrixKeyValue`, tuneFlashBackward) where it fits, else the first default that fits
 * (`defaultMatrixKeyValueShapes`).
 */
export function matrixKeyValueShape(
  problem: AttentionProblem,
  gradOut: AttentionLayout,
  tiles: FlashTiles,
  caps: FlashCaps,
  buffers: { readonly q: GPUBuffer; readonly gradOut: GPUBuffer },
): MatrixKeyValueShape | null {
  const { headDimQk, headDimV } = tiles;
  if (!tiles.directKeyValues || Math.max(headDimQk, headDimV) > 128) return null;
  const { layout, queryHeads, queryLength } = problem;
  const limit = caps.maxStorageBufferBindingSize;
  const q = { buffer: buffers.q, layout: layout.q, heads: queryHeads, length: queryLength, dims: problem.headDimQk };
  const dO = { buffer: buffers.gradOut, layout: gradOut, heads: queryHeads, length: queryLength, dims: problem.headDimV };
  // The q and dO copies hold whole query tiles (matrixKeyValueRecording in flash-backward.ts, or its prologue).
  const copiesFit = (shape: MatrixKeyValueShape) => {
    const rows = Math.ceil(queryLength / shape.rows) * shape.rows;
    return !paddedCopyUnavailable(problem, q, rows, headDimQk, limit) && !paddedCopyUnavailable(problem, dO, rows, headDimV, limit);
  };
  const tuned = tiles.matrixKeyValue && matrixKeyValueFits(tiles.matrixKeyValue, headDimQk, headDimV, caps) ? [tiles.matrixKeyValue] : [];
  const shapes = [...tuned, ...defaultMatrixKeyValueShapes(headDimQk, headDimV)].filter(copiesFit);
  return firstFittingMatrixShape(shapes, (shape) => matrixKeyValueStorage(shape, headDimQk, headDimV), caps);
}

/**
 * The matrix dK/dV shape for these tiles where its q and dO copies fit (any problem the benchmark reports on): the
 * device's tuned shape where it fits, else the first default that fits; null where the matrix dK/dV does not run.
 */
export function preferredMatrixKeyValueShape(tiles: FlashTiles, caps: FlashCaps): MatrixKeyValueShape | null {
  const { headDimQk, headDimV } = tiles;
  if (!tiles.directKeyValues || Math.max(headDimQk, headDimV) > 128) return null;
  if (tiles.matrixKeyValue && matrixKeyValueFits(tiles.matrixKeyValue, headDimQk, headDimV, caps)) return tiles.matrixKeyValue;
  return defaultMatrixKeyValueShape(headDimQk, headDimV, caps);
}

/**
 * The matrix dK/dV kernel for a variant and shape (with the builtins emulated on a device marked for tests); `chunks`:
 * whether it writes dk and dv in chunks of 8 f16 (their rows allow it: rowsOfEights); `storesScores`: it also writes
 * dS for the stored-score dQ (matrix-stored-scores.ts); `heaviestFirst`: its grid runs the heaviest key blocks first,
 * for banded masks (balanced-blocks.ts).
 */
export function matrixKeyValueKernel(
  gpu: GPUDevice,
  variant: FlashVariant,
  tiles: FlashTiles,
  shape: MatrixKeyValueShape,
  chunks: { readonly dk: boolean; readonly dv: boolean },
  storesScores = false,
  heaviestFirst = false,
): KernelSource {
  return flashMatrixKernel(gpu, 'flash-backward-key-value-matrix', source, variant, tiles, {
    sizes: { SUBGROUPS: shape.subgroups, BLOCK_M: shape.rows },
    flags: { DK_VEC8: chunks.dk, DV_VEC8: chunks.dv, STORE_SCORES: storesScores, HEAVIEST_FIRST: heaviestFirst },
    snippets: {
      ...matrixKeyValueGradientBlocks({ qk16: tiles.headDimQk / 16, v16: tiles.headDimV / 16, rows16: shape.rows / 16 }),
      STORE_DK: storeGradientRow({ tensor: 'dk', uniforms: 'dk', dims: 'HEAD_DIM_QK', valid: 'params.head_dim_qk', chunked: chunks.dk }, 'key'),
      STORE_DV: storeGradientRow({ tensor: 'dv', uniforms: 'dv', dims: 'HEAD_DIM_V', valid: 'params.head_dim_v', chunked: chunks.dv }, 'key'),
    },
  });
}
