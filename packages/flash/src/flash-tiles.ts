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

/** The forward kernel's workgroup shape: threads, query rows per thread (register tiling) and keys per staged tile. */
export interface ForwardTiles {
  readonly threads: number;
  readonly rowsPerThread: number;
  readonly keys: number;
}

/** Query rows per forward thread the kernel compiles (the size of its per-thread register arrays). */
export const FORWARD_ROWS_PER_THREAD = [1, 2, 4] as const;

/** Whether `forward` runs for these head-dim buckets on `caps` (threads, storage, register arrays). */
export function forwardTilesFit(forward: ForwardTiles, headDimQk: number, headDimV: number, caps: FlashCaps): boolean {
  return (
    forward.threads <= (caps.maxComputeInvocationsPerWorkgroup || 64) &&
    (FORWARD_ROWS_PER_THREAD as readonly number[]).includes(forward.rowsPerThread) &&
    forward.rowsPerThread * (headDimBucket(headDimQk) + headDimBucket(headDimV)) <= 512 &&
    forward.keys >= MIN_TILE &&
    forward.keys <= FORWARD_MAX_TILE &&
    forward.keys * (headDimBucket(headDimQk) + headDimBucket(headDimV)) * 4 + SHARED_EXTRA <= caps.maxComputeWorkgroupStorageSize
  );
}

/** Tuned forward tiles per device (flash-tuning.ts fills it), keyed by forwardTuningKey. */
const TUNED_FORWARD = new WeakMap<GPUDevice, Map<string, ForwardTiles>>();

export const forwardTuningKey = (dtype: string, headDimQk: number, headDimV: number) =>
  `${dtype}|${headDimBucket(headDimQk)}|${headDimBucket(headDimV)}`;

/** The device's tuned forward tiles (a live map: tuning writes into it). */
export function tunedForwardTilesOf(gpu: GPUDevice): Map<string, ForwardTiles> {
  let tuned = TUNED_FORWARD.get(gpu);
  if (!tuned) {
    tuned = new Map();
    TUNED_FORWARD.set(gpu, tuned);
  }
  return tuned;
}

/** The tuned forward tiles for this device, dtype and head dims, if `tuneFlashForward` chose some. */
export function tunedForwardTiles(gpu: GPUDevice, dtype: string, headDimQk: number, headDimV: number): ForwardTiles | undefined {
  return TUNED_FORWARD.get(gpu)?.get(forwardTuningKey(dtype, headDimQk, headDimV));
}

/**
 * Tile sizes for a problem on a device. `forward` (a tuned choice, see flash-tuning.ts) replaces the forward's
 * default workgroup shape when it fits.
 */
export function chooseTiles(
  problem: Pick<AttentionProblem, 'headDimQk' | 'headDimV'>,
  caps: FlashCaps,
  forward?: ForwardTiles,
): FlashTiles | null {
  const headDimQk = headDimBucket(problem.headDimQk);
  const headDimV = headDimBucket(problem.headDimV);
  const storage = caps.maxComputeWorkgroupStorageSize;
  const threads = Math.min(64, caps.maxComputeInvocationsPerWorkgroup || 64);
  const keys = largestTile((headDimQk + headDimV) * 4, storage, MIN_TILE);
  const backwardRows = largestTile((headDimQk + headDimV + 3) * 4, storage, 1);
  if (keys === null || backwardRows === null) return null;
  const tuned = forward && forwardTilesFit(forward, headDimQk, headDimV, caps) ? forward : null;
  return {
    headDimQk,
    headDimV,
    rows: threads,
    keys,
    forwardThreads: tuned?.threads ?? threads,
    forwardRowsPerThread: tuned?.rowsPerThread ?? forwardRowsPerThread(headDimQk + headDimV),
    forwardKeys: tuned?.keys ?? Math.min(keys, FORWARD_MAX_TILE),
    backwardKeys: threads,
    backwardRows,
  };
}

/** Bytes of workgroup storage the smallest tiles need (for rejection messages). */
export function minimumStorage(problem: Pick<AttentionProblem, 'headDimQk' | 'headDimV'>): number {
  return MIN_TILE * (headDimBucket(problem.headDimQk) + headDimBucket(problem.headDimV)) * 4 + SHARED_EXTRA;
}
