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
  /** The forward kernel and its shape (tuned or default). */
  readonly forward: ForwardTiles;
  /** The compact row-per-thread shape (dQ's, and the compact forward's): threads, query rows per thread, keys per tile. */
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

/**
 * The forward kernel and its workgroup shape. 'tiled' (flash-forward-tiled.wgsl): S = q kᵀ and O += P v as
 * register-blocked products, `keys` = 4 · key threads per tile, threads / key threads · rowsPerThread query rows
 * per workgroup. 'compact' (flash-forward.wgsl): each thread owns rowsPerThread whole rows, `keys` per staged tile,
 * threads · rowsPerThread rows per workgroup; it needs less workgroup storage (the fallback for small limits).
 */
export interface ForwardTiles {
  readonly kernel: 'tiled' | 'compact';
  readonly threads: number;
  readonly rowsPerThread: number;
  readonly keys: number;
}

/** Query rows per thread the forward kernels compile (the size of their per-thread register arrays). */
export const FORWARD_ROWS_PER_THREAD = [1, 2, 4] as const;
/** The tiled forward's threads per row group (keys per tile = 4 ×). */
export const TILED_KEY_THREADS = [4, 8, 16] as const;

/** Query rows one forward workgroup computes. */
export function forwardRowsPerWorkgroup(forward: ForwardTiles): number {
  const rowGroups = forward.kernel === 'tiled' ? forward.threads / (forward.keys / 4) : forward.threads;
  return rowGroups * forward.rowsPerThread;
}

/** Workgroup bytes of the tiled forward (flash-forward-tiled.wgsl's workgroup arrays). */
export function tiledForwardStorage(forward: Omit<ForwardTiles, 'kernel'>, headDimQk: number, headDimV: number): number {
  const keyThreads = forward.keys / 4;
  const rows = (forward.threads / keyThreads) * forward.rowsPerThread;
  const [qk4, v4] = [headDimBucket(headDimQk) / 4, headDimBucket(headDimV) / 4];
  const vec4s = rows * (qk4 + 1) + qk4 * 4 * keyThreads + forward.keys * v4 + rows * (keyThreads + 1);
  return vec4s * 16 + forward.threads * forward.rowsPerThread * 4 + forward.keys * 4 + 4 + SHARED_EXTRA;
}

/** Whether `forward` runs for these head-dim buckets on `caps` (threads, storage, register arrays). */
export function forwardTilesFit(forward: ForwardTiles, headDimQk: number, headDimV: number, caps: FlashCaps): boolean {
  const [qk, v] = [headDimBucket(headDimQk), headDimBucket(headDimV)];
  const common =
    forward.threads <= (caps.maxComputeInvocationsPerWorkgroup || 64) &&
    (FORWARD_ROWS_PER_THREAD as readonly number[]).includes(forward.rowsPerThread);
  if (forward.kernel === 'tiled') {
    const keyThreads = forward.keys / 4;
    return (
      common &&
      (TILED_KEY_THREADS as readonly number[]).includes(keyThreads) &&
      forward.threads % keyThreads === 0 &&
      keyThreads <= v / 4 &&
      // Output registers per thread: rows × head dims / key threads.
      (forward.rowsPerThread * v) / keyThreads <= 64 &&
      tiledForwardStorage(forward, qk, v) <= caps.maxComputeWorkgroupStorageSize
    );
  }
  return (
    common &&
    forward.kernel === 'compact' &&
    forward.rowsPerThread * (qk + v) <= 512 &&
    forward.keys >= MIN_TILE &&
    forward.keys <= FORWARD_MAX_TILE &&
    forward.keys * (qk + v) * 4 + SHARED_EXTRA <= caps.maxComputeWorkgroupStorageSize
  );
}

/** The tiled forward's default shape: 128 threads, key threads by head dim, as many rows per thread as fit. */
function defaultTiledForward(headDimQk: number, headDimV: number, caps: FlashCaps): ForwardTiles | null {
  const keyThreads = Math.min(16, Math.max(4, headDimV / 8));
  for (const threads of [128, 64]) {
    for (const rowsPerThread of [4, 2, 1]) {
      const tiles: ForwardTiles = { kernel: 'tiled', threads, rowsPerThread, keys: 4 * keyThreads };
      if (forwardTilesFit(tiles, headDimQk, headDimV, caps)) return tiles;
    }
  }
  return null;
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
  const compact = tuned?.kernel === 'compact' ? tuned : null;
  const compactTiles: ForwardTiles = {
    kernel: 'compact',
    threads: compact?.threads ?? threads,
    rowsPerThread: compact?.rowsPerThread ?? forwardRowsPerThread(headDimQk + headDimV),
    keys: compact?.keys ?? Math.min(keys, FORWARD_MAX_TILE),
  };
  return {
    headDimQk,
    headDimV,
    rows: threads,
    keys,
    forward: tuned ?? defaultTiledForward(headDimQk, headDimV, caps) ?? compactTiles,
    forwardThreads: compactTiles.threads,
    forwardRowsPerThread: compactTiles.rowsPerThread,
    forwardKeys: compactTiles.keys,
    backwardKeys: threads,
    backwardRows,
  };
}

/** Bytes of workgroup storage the smallest tiles need (for rejection messages). */
export function minimumStorage(problem: Pick<AttentionProblem, 'headDimQk' | 'headDimV'>): number {
  return MIN_TILE * (headDimBucket(problem.headDimQk) + headDimBucket(problem.headDimV)) * 4 + SHARED_EXTRA;
}
