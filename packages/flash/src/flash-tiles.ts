import type { AttentionProblem, DeviceCaps } from '@webattn/tensor';

/** The device facts flash kernels depend on (a `DeviceCaps` has them all; `capsOfGpuDevice` reads a raw GPUDevice). */
export type FlashCaps = Pick<
  DeviceCaps,
  | 'shaderF16'
  | 'maxComputeWorkgroupStorageSize'
  | 'maxComputeInvocationsPerWorkgroup'
  | 'maxComputeWorkgroupsPerDimension'
  | 'maxStorageBufferBindingSize'
  | 'maxStorageBuffersPerShaderStage'
>;

export function capsOfGpuDevice(device: GPUDevice): FlashCaps {
  const limits = device.limits;
  return {
    shaderF16: device.features.has('shader-f16'),
    maxComputeWorkgroupStorageSize: limits.maxComputeWorkgroupStorageSize,
    maxComputeInvocationsPerWorkgroup: limits.maxComputeInvocationsPerWorkgroup,
    maxComputeWorkgroupsPerDimension: limits.maxComputeWorkgroupsPerDimension,
    maxStorageBufferBindingSize: limits.maxStorageBufferBindingSize,
    maxStorageBuffersPerShaderStage: limits.maxStorageBuffersPerShaderStage,
  };
}

/** Head dims are compiled in buckets (the size of per-thread register arrays); any dim up to the bucket runs. */
export const HEAD_DIM_BUCKETS = [16, 32, 64, 128, 256] as const;
export const MAX_HEAD_DIM = 256;
/** Largest key tile (the kernels' MAX_BLOCK_N: per-row score registers). */
const MAX_TILE = 64;
const MIN_TILE = 4;
/** The forward's largest key tile (its MAX_BLOCK_N: per-thread score registers, ROWS per key). */
const FORWARD_MAX_TILE = 32;

/** Query rows per forward thread: each staged key/value element then serves that many rows. */
function forwardRowsPerThread(headDims: number): number {
  return Math.max(1, Math.min(4, Math.floor(256 / headDims)));
}
/** Workgroup bytes besides the tiles (the shared Sequence record, padded). */
const SHARED_EXTRA = 32;

export function headDimBucket(dim: number): number {
  return HEAD_DIM_BUCKETS.find((bucket) => bucket >= dim) ?? MAX_HEAD_DIM;
}

/** Tile sizes (override constants) for one problem on one device; null when even the smallest tile does not fit. */
export interface FlashTiles {
  readonly headDimQk: number;
  readonly headDimV: number;
  /** dQ (and split-KV): query rows per workgroup (threads) and keys per staged tile. */
  readonly rows: number;
  readonly keys: number;
  /** Forward: threads per workgroup, query rows per thread (register tiling) and keys per staged tile. */
  readonly forwardThreads: number;
  readonly forwardRowsPerThread: number;
  readonly forwardKeys: number;
  /** dK/dV: keys per workgroup (threads) and query rows per staged tile. */
  readonly backwardKeys: number;
  readonly backwardRows: number;
}

function largestTile(bytesPerRow: number, storage: number, minimum: number): number | null {
  for (let tile = MAX_TILE; tile >= minimum; tile /= 2) {
    if (tile * bytesPerRow + SHARED_EXTRA <= storage) return tile;
  }
  return null;
}

export function chooseTiles(problem: Pick<AttentionProblem, 'headDimQk' | 'headDimV'>, caps: FlashCaps): FlashTiles | null {
  const headDimQk = headDimBucket(problem.headDimQk);
  const headDimV = headDimBucket(problem.headDimV);
  const storage = caps.maxComputeWorkgroupStorageSize;
  const threads = Math.min(64, caps.maxComputeInvocationsPerWorkgroup || 64);
  const keys = largestTile((headDimQk + headDimV) * 4, storage, MIN_TILE);
  const backwardRows = largestTile((headDimQk + headDimV + 3) * 4, storage, 1);
  if (keys === null || backwardRows === null) return null;
  return {
    headDimQk,
    headDimV,
    rows: threads,
    keys,
    forwardThreads: threads,
    forwardRowsPerThread: forwardRowsPerThread(headDimQk + headDimV),
    forwardKeys: Math.min(keys, FORWARD_MAX_TILE),
    backwardKeys: threads,
    backwardRows,
  };
}

/** Bytes of workgroup storage the smallest tiles need (for rejection messages). */
export function minimumStorage(problem: Pick<AttentionProblem, 'headDimQk' | 'headDimV'>): number {
  return MIN_TILE * (headDimBucket(problem.headDimQk) + headDimBucket(problem.headDimV)) * 4 + SHARED_EXTRA;
}
