/**
 * The matrix backward (f16 on subgroup matrices) with stored score gradients, as the tiled backward's stored-scores.ts:
 * the matrix dK/dV kernel, which computes every pair's dS anyway, also writes dS · scale as f16 into a scratch
 * (STORE_SCORES in flash-backward-key-value-matrix.wgsl; the same f16 values its own dK = dSᵀ Q multiplies), and dQ =
 * dS K becomes one matrix product (flash-backward-query-matrix-stored.wgsl) instead of the matrix dQ kernel's three.
 * One slot of rows × keys per (batch, query head), row-major, in pieces within the budget (storedScorePieces).
 *
 * No piece is zeroed: dK/dV writes every pair of each query tile it visits (0 where masked; it skips no tile a bool
 * mask removes), its query tiles are whole multiples of 16 rows and its key blocks of 16 keys, and dQ reads, per
 * subgroup of 16 rows, only the 16-key tiles some of those rows may attend — pairs of tiles dK/dV visited.
 */
import type { AttentionProblem, KernelSource } from '@webattn/tensor';
import { flashMatrixKernel, type FlashVariant } from './flash-kernels';
import { storeGradientRow } from './chunked-rows';
import { SHARED_EXTRA, type FlashCaps, type FlashTiles, type MatrixKeyValueShape } from './flash-tiles';
import { matrixStoredQueryBlocks } from './matrix-blocks';
import { roundUp, storedScorePieces, type StoredScoresPiece } from './stored-scores';
import source from './flash-backward-query-matrix-stored.wgsl?raw';

/** The stored-score matrix dQ kernel's shape: subgroups per workgroup, 16 query rows each. */
export interface MatrixStoredQueryShape {
  readonly subgroups: number;
}

export interface MatrixStoredScoresPlan {
  readonly query: MatrixStoredQueryShape;
  readonly pieces: readonly StoredScoresPiece[];
  /** The largest piece's scratch. */
  readonly bytes: number;
}

/** Workgroup bytes of flash-backward-query-matrix-stored.wgsl. */
export function matrixStoredQueryStorage(shape: MatrixStoredQueryShape, headDimQk: number): number {
  return shape.subgroups * 16 * (headDimQk + 1) * 4 + SHARED_EXTRA;
}

/**
 * The stored-score matrix dQ's shape: one subgroup per workgroup (on an H200, bench notes entry 36: 1, 2 and 4
 * subgroups ran B4 H16 N4096 D64's dQ in 3.75, 3.91 and 3.85 ms, causal 2.04, 1.87 and 1.95; D16 and D32 alike
 * within 2%). Its 16 rows × the head dim of f32 fit every device's workgroup storage up to head dim 128.
 */
const QUERY_SHAPE: MatrixStoredQueryShape = { subgroups: 1 };

/**
 * The pieces of a matrix backward whose dK/dV runs with `keyValue` (16 · subgroups keys per workgroup, query tiles of
 * `rows` rows) under `budget` bytes; null where one kv head's slots do not fit it, or the dQ kernel does not fit the
 * device's workgroup storage.
 */
export function planMatrixStoredScores(
  problem: AttentionProblem,
  headDimQk: number,
  keyValue: MatrixKeyValueShape,
  caps: FlashCaps,
  budget: number,
): MatrixStoredScoresPlan | null {
  if (matrixStoredQueryStorage(QUERY_SHAPE, headDimQk) > caps.maxComputeWorkgroupStorageSize || budget <= 0) return null;
  // Every row and key dK/dV's tiles touch lies inside the slot (dQ's rows and key tiles lie inside dK/dV's).
  const slot = { rows: roundUp(problem.queryLength, keyValue.rows), keys: roundUp(problem.keyLength, keyValue.subgroups * 16), elementBytes: 2, indexBytes: 2 };
  const pieces = storedScorePieces(problem, slot, Math.min(budget, caps.maxStorageBufferBindingSize));
  if (!pieces) return null;
  return { query: QUERY_SHAPE, pieces, bytes: Math.max(16, ...pieces.map((p) => p.bytes)) };
}

/** The stored-score matrix dQ kernel; `chunked`: it writes dq in chunks of 8 f16 (its rows allow it: rowsOfEights). */
export function matrixStoredQueryKernel(gpu: GPUDevice, variant: FlashVariant, tiles: FlashTiles, shape: MatrixStoredQueryShape, chunked: boolean): KernelSource {
  return flashMatrixKernel(gpu, 'flash-backward-query-matrix-stored', source, variant, tiles, {
    sizes: { SUBGROUPS: shape.subgroups },
    flags: { DQ_VEC8: chunked },
    snippets: {
      ...matrixStoredQueryBlocks(tiles.headDimQk / 16),
      STORE_DQ: storeGradientRow({ tensor: 'dq', uniforms: 'dq', dims: 'HEAD_DIM_QK', valid: 'params.head_dim_qk', chunked }, 'query'),
    },
  });
}
