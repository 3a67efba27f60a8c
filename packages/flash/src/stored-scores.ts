/**
 * The tiled backward with stored score gradients: the dK/dV kernel, which computes every pair's dS anyway, also
 * writes dS · scale into an f32 scratch (STORE_SCORES in flash-backward-key-value-tiled.wgsl), and dQ = dS K
 * becomes one plain matrix product (flash-backward-query-stored.wgsl) instead of a kernel that recomputes S and dP:
 * five matrix products per backward instead of seven. The scratch holds one slot of keys × rows per (batch, query
 * head); when the whole problem's slots exceed the budget, it runs in pieces (batch entries, or one batch entry's
 * kv heads with their query heads), each dK/dV then dQ. Problems whose single kv head's slots exceed the budget keep
 * the recompute kernel.
 *
 * dQ reads, per block of its rows, every pair of each key tile that some row of the block may attend; dK/dV visits
 * whole such row blocks of each key block it runs (STORED_ROWS), so it writes every pair dQ reads (0 where masked)
 * and the scratch needs no zeroing — unless a bool mask lets dK/dV skip whole key blocks, or dQ's key tiles straddle
 * dK/dV's key blocks: then each piece zeroes its slots first (`clears`).
 */
import { InvalidArgumentError, type AttentionProblem, type Device, type KernelSource } from '@webattn/tensor';
import type { Chunk } from './binding-chunks';
import { flashKernel, type FlashVariant } from './flash-kernels';
import { SHARED_EXTRA, type FlashCaps, type FlashTiles, type TiledShape } from './flash-tiles';
import type { Vec4Rows } from './vec4-loaders';
import storedQuerySource from './flash-backward-query-stored.wgsl?raw';

/** The scratch the stored score gradients may take (the device's buffer and binding limits may lower it). */
export const STORED_SCORES_BYTES = 1024 * 1024 * 1024;

/** Budgets set per device (setStoredScoresBudget). */
const BUDGETS = new WeakMap<GPUDevice, number>();

/**
 * Sets how many bytes the backward of `flashAttentionGrad` (and so sdpa's and nn's flash backward; tiled or on
 * subgroup matrices, matrix-stored-scores.ts) may keep its score gradients in on this device, for every later call:
 * 0 stores none (dQ recomputes them: no N×N scratch, as FlashAttention-2); `undefined` restores the default, STORED_SCORES_BYTES. The raw-buffer API takes
 * `FlashRecordOptions.storedScoresBytes` per call instead.
 */
export function setStoredScoresBudget(device: Device, bytes: number | undefined): void {
  if (bytes !== undefined && !(Number.isSafeInteger(bytes) && bytes >= 0)) {
    throw new InvalidArgumentError(`setStoredScoresBudget: bytes must be a whole number ≥ 0 (0 stores no score gradients), got ${bytes}`);
  }
  if (!device.isGpu) return;
  if (bytes === undefined) BUDGETS.delete(device.gpu);
  else BUDGETS.set(device.gpu, bytes);
}

/** The budget set for this device (setStoredScoresBudget), or undefined: the default. */
export function storedScoresBudget(gpu: GPUDevice): number | undefined {
  return BUDGETS.get(gpu);
}

/** The stored-score dQ kernel's shape: DIM_THREADS × ROW_QUADS threads, tiles of BLOCK_N keys. */
export interface StoredQueryShape {
  readonly dimThreads: number;
  readonly rowQuads: number;
  readonly blockN: number;
}

/** One piece: the dK/dV chunk (kv heads), the dQ chunk (their query heads) and its uniforms. */
export interface StoredScoresPiece {
  readonly keyValue: Chunk;
  readonly query: Chunk;
  readonly uniforms: Readonly<Record<string, number>>;
  readonly bytes: number;
}

export interface StoredScoresPlan {
  readonly shape: StoredQueryShape;
  /** Whether each piece zeroes its slots before dK/dV runs (see the header). */
  readonly clears: boolean;
  readonly pieces: readonly StoredScoresPiece[];
  /** The largest piece's scratch. */
  readonly bytes: number;
}

const ROW_QUADS = 16;

/** Query rows one workgroup of the stored-score dQ kernel takes (its BLOCK_ROWS). */
export const storedQueryRows = (shape: StoredQueryShape) => 4 * shape.rowQuads;

/**
 * The stored-score dQ kernel's shape at this head-dim bucket, or null where its tiles do not fit the workgroup:
 * 16-key tiles (32-key ones ran the f32 backward 1–2% slower at D16, D32 and D64 on an H200: bench notes, entry 35).
 */
export function storedQueryShape(headDimQk: number, caps: FlashCaps): StoredQueryShape | null {
  const dimThreads = Math.min(16, headDimQk / 4);
  if (dimThreads * ROW_QUADS > caps.maxComputeInvocationsPerWorkgroup) return null;
  for (const blockN of [16, 8]) {
    const bytes = blockN * ROW_QUADS * 16 + blockN * headDimQk * 4 + SHARED_EXTRA;
    if (bytes <= caps.maxComputeWorkgroupStorageSize) return { dimThreads, rowQuads: ROW_QUADS, blockN };
  }
  return null;
}

const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));
const lcm = (a: number, b: number) => (a / gcd(a, b)) * b;
export const roundUp = (value: number, step: number) => Math.ceil(value / step) * step;

/**
 * The pieces of a backward whose dK/dV runs the tiled kernel with `keyValue` (its workgroups take
 * threads / keyThreads · rowsPerThread keys, its query tiles 4 · keyThreads rows), under `budget` bytes; null where
 * one kv head's slots do not fit it (or the kernel's tiles do not fit the device).
 */
export function planStoredScores(
  problem: AttentionProblem,
  headDimQk: number,
  keyValue: TiledShape,
  caps: FlashCaps,
  budget: number,
): StoredScoresPlan | null {
  const shape = storedQueryShape(headDimQk, caps);
  if (!shape || budget <= 0) return null;
  const { queryLength, keyLength } = problem;
  const [queryTile, keyBlock, rowBlock] = [4 * keyValue.keyThreads, (keyValue.threads / keyValue.keyThreads) * keyValue.rowsPerThread, storedQueryRows(shape)];
  // Every row and key either kernel's tiles touch lies inside the slot.
  const rows = roundUp(queryLength, lcm(queryTile, rowBlock));
  const keys = roundUp(keyLength, lcm(keyBlock, shape.blockN));
  const wholeRowBlocks = rowBlock % queryTile === 0 || queryTile % rowBlock === 0;
  const clears = problem.mask.kind === 'bool' || keyBlock % shape.blockN !== 0 || !wholeRowBlocks;
  const pieces = storedScorePieces(problem, { rows, keys, elementBytes: 4, indexBytes: 16 }, Math.min(budget, caps.maxStorageBufferBindingSize));
  if (!pieces) return null;
  return { shape, clears, pieces, bytes: Math.max(16, ...pieces.map((p) => p.bytes)) };
}

/** A stored-score slot: rows × keys of `elementBytes` each, indexed by the kernels in u32 units of `indexBytes`. */
export interface ScoreSlot {
  readonly rows: number;
  readonly keys: number;
  readonly elementBytes: number;
  readonly indexBytes: number;
}

/**
 * The pieces of a stored-score backward with one slot per (batch, query head), each piece's slots within `limit`
 * bytes: batch entries, or one batch entry's kv heads with their query heads; null where one kv head's slots do not
 * fit (or could not be indexed).
 */
export function storedScorePieces(problem: AttentionProblem, slot: ScoreSlot, limit: number): StoredScoresPiece[] | null {
  const { batch, queryHeads, kvHeads, queryLength, keyLength } = problem;
  const group = queryHeads / kvHeads;
  const kvHeadBytes = slot.rows * slot.keys * slot.elementBytes * group;
  if (kvHeadBytes > limit || kvHeadBytes / slot.indexBytes > 2 ** 32) return null;
  const all = (count: number) => ({ start: 0, count });
  const piece = (batchStart: number, batchCount: number, kvStart: number, kvCount: number): StoredScoresPiece => ({
    keyValue: { batch: { start: batchStart, count: batchCount }, heads: { start: kvStart, count: kvCount }, rows: all(queryLength), keys: all(keyLength) },
    query: { batch: { start: batchStart, count: batchCount }, heads: { start: kvStart * group, count: kvCount * group }, rows: all(queryLength), keys: all(keyLength) },
    uniforms: { ds_batch_base: batchStart, ds_head_base: kvStart * group, ds_slot_heads: kvCount * group, ds_keys: slot.keys, ds_rows: slot.rows },
    bytes: batchCount * kvCount * kvHeadBytes,
  });
  const pieces: StoredScoresPiece[] = [];
  const batchBytes = kvHeads * kvHeadBytes;
  if (batchBytes <= limit) {
    const perPiece = Math.floor(limit / batchBytes);
    for (let b = 0; b < batch; b += perPiece) pieces.push(piece(b, Math.min(perPiece, batch - b), 0, kvHeads));
  } else {
    const perPiece = Math.floor(limit / kvHeadBytes);
    for (let b = 0; b < batch; b++) {
      for (let h = 0; h < kvHeads; h += perPiece) pieces.push(piece(b, 1, h, Math.min(perPiece, kvHeads - h)));
    }
  }
  return pieces;
}

/** The stored-score dQ kernel (flash-backward-query-stored.wgsl) of this shape. */
export function storedQueryKernel(variant: FlashVariant, tiles: FlashTiles, shape: StoredQueryShape, vec4Rows: Vec4Rows): KernelSource {
  const sizes = { DIM_THREADS: shape.dimThreads, ROW_QUADS: shape.rowQuads, BLOCK_N: shape.blockN };
  return flashKernel('flash-backward-query-stored', storedQuerySource, variant, tiles, {}, {}, { sizes, vec4Rows });
}
