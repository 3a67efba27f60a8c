import type { AttentionProblem, DeviceCaps } from '@webattn/tensor';
import { KEY_STEP } from './flash-chunks';
import { subgroupMatricesEmulated, withEmulatedMatrices } from './subgroup-matrix-emulation';

/** The device facts flash kernels depend on (a `DeviceCaps` has them all; `capsOfGpuDevice` reads a raw GPUDevice). */
export type FlashCaps = Pick<
  DeviceCaps,
  | 'shaderF16'
  | 'maxComputeWorkgroupStorageSize'
  | 'maxComputeInvocationsPerWorkgroup'
  | 'maxComputeWorkgroupsPerDimension'
  | 'maxStorageBufferBindingSize'
  | 'maxStorageBuffersPerShaderStage'
> &
  // The subgroup-matrix forward's facts (absent: no subgroup matrices).
  Partial<Pick<DeviceCaps, 'subgroups' | 'subgroupMatrix' | 'subgroupMinSize' | 'subgroupMaxSize' | 'subgroupMatrixConfigs'>> & {
    /**
     * The most bytes the backward may keep its score gradients in (stored-scores.ts, matrix-stored-scores.ts; default
     * STORED_SCORES_BYTES; 0: dQ recomputes them).
     */
    readonly storedScoresBytes?: number;
  };

/** What a raw GPUDevice tells of its subgroups (`adapterInfo`, where the implementation has it). */
interface SubgroupInfo {
  readonly subgroupMinSize?: number;
  readonly subgroupMaxSize?: number;
  readonly subgroupMatrixConfigs?: FlashCaps['subgroupMatrixConfigs'];
}

export function capsOfGpuDevice(device: GPUDevice): FlashCaps {
  const limits = device.limits;
  const info = ((device as { adapterInfo?: SubgroupInfo }).adapterInfo ?? {}) as SubgroupInfo;
  return {
    shaderF16: device.features.has('shader-f16'),
    subgroups: device.features.has('subgroups'),
    subgroupMatrix: device.features.has('chromium-experimental-subgroup-matrix' as GPUFeatureName),
    subgroupMinSize: info.subgroupMinSize ?? 0,
    subgroupMaxSize: info.subgroupMaxSize ?? 0,
    subgroupMatrixConfigs: [...(info.subgroupMatrixConfigs ?? [])].map(({ componentType, resultComponentType, M, N, K }) => ({
      componentType,
      resultComponentType,
      M,
      N,
      K,
    })),
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
/**
 * Workgroup bytes besides the tiles: the shared Sequence record (padded) and the key-tile marks of row-broadcast
 * bool masks (flash-common.wgsl: 2 × SKIP_WORDS words and a flag, padded).
 */
export const SHARED_EXTRA = 32 + 144;

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
  /**
   * The matrix forward takes its key and value matrices straight from padded copies of k and v
   * (padded-key-values.ts) instead of staging them in workgroup memory; false for every other forward.
   */
  readonly directKeyValues: boolean;
  /** The tiled backward kernels' shapes (with a tiled forward; null: the compact kernels run). */
  readonly tiledQuery: TiledShape | null;
  readonly tiledKeyValue: TiledShape | null;
  /**
   * The matrix backward kernels' shapes tuned for the device (tuneFlashBackward; with the matrix forward's direct form
   * only), tried before their defaults (matrixQueryShape, matrixKeyValueShape); null: the defaults.
   */
  readonly matrixQuery: MatrixQueryShape | null;
  readonly matrixKeyValue: MatrixKeyValueShape | null;
  /** The compact row-per-thread shape (compact dQ's, and the compact forward's): threads, query rows per thread, keys per tile. */
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
 * 'matrix' (flash-forward-matrix.wgsl, f16 on subgroup matrices): threads / 32 subgroups, each owning
 * rowsPerThread blocks of 16 query rows, `keys` per staged tile.
 */
export interface ForwardTiles {
  readonly kernel: 'tiled' | 'compact' | 'matrix';
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
  if (forward.kernel === 'matrix') return (forward.threads / MATRIX_SUBGROUP_SIZE) * forward.rowsPerThread * 16;
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

/** The subgroup size the matrix forward is written for, and its shapes: subgroups, row blocks per subgroup, keys. */
export const MATRIX_SUBGROUP_SIZE = 32;
export const MATRIX_SUBGROUPS = [1, 2, 4, 8] as const;
export const MATRIX_ROW_BLOCKS = [1, 2] as const;
export const MATRIX_KEYS = [16, 32, 64] as const;
/** Head-dim buckets the matrix forward compiles (its output and q stay in matrices: 16 · 8 per row block). */
const MATRIX_MAX_HEAD_DIM = 128;

/**
 * Why the subgroup-matrix forward cannot run `dtype` on `caps` (f16 inputs, shader-f16, subgroups, the
 * chromium-experimental-subgroup-matrix feature with a 16×16×16 f16→f32 config, subgroups of exactly 32), or null.
 */
export function matrixForwardUnavailable(dtype: string, caps: FlashCaps): string | null {
  if (dtype !== 'f16') return `dtype ${dtype} (subgroup matrices take f16 inputs)`;
  if (!caps.shaderF16 || !caps.subgroups || !caps.subgroupMatrix) return 'the device lacks shader-f16, subgroups or chromium-experimental-subgroup-matrix';
  const config = (caps.subgroupMatrixConfigs ?? []).find(
    (c) => c.componentType === 'f16' && c.resultComponentType === 'f32' && c.M === 16 && c.N === 16 && c.K === 16,
  );
  if (!config) return 'no 16×16×16 f16→f32 subgroup-matrix config';
  if (caps.subgroupMinSize !== MATRIX_SUBGROUP_SIZE || caps.subgroupMaxSize !== MATRIX_SUBGROUP_SIZE) {
    return `subgroup sizes ${caps.subgroupMinSize}..${caps.subgroupMaxSize} (the kernel needs exactly ${MATRIX_SUBGROUP_SIZE})`;
  }
  return null;
}

/** The first of `shapes` (subgroups of MATRIX_SUBGROUP_SIZE lanes) whose threads and workgroup storage fit `caps`. */
export function firstFittingMatrixShape<Shape extends { readonly subgroups: number }>(
  shapes: readonly Shape[],
  storage: (shape: Shape) => number,
  caps: FlashCaps,
): Shape | null {
  return (
    shapes.find((shape) => shape.subgroups * MATRIX_SUBGROUP_SIZE <= caps.maxComputeInvocationsPerWorkgroup && storage(shape) <= caps.maxComputeWorkgroupStorageSize) ??
    null
  );
}

/** Workgroup bytes of flash-forward-matrix.wgsl (its workgroup arrays; `direct`: the DIRECT_KV form). */
export function matrixForwardStorage(forward: Omit<ForwardTiles, 'kernel'>, headDimQk: number, headDimV: number, direct = false): number {
  const [qk, v] = [headDimBucket(headDimQk), headDimBucket(headDimV)];
  const rows = (forward.threads / MATRIX_SUBGROUP_SIZE) * forward.rowsPerThread * 16;
  // Key and value tiles, two buffers each (the next tile is staged during this one), and their NaN flags.
  const tiles = direct ? 0 : 2 * (forward.keys * (qk + 8) * 2 + forward.keys * (v + 8) * 2) + 2 * forward.keys * 4 + 8;
  const width = Math.max(forward.keys, qk);
  const scratch = rows * (Math.max(forward.keys, v) + 1) * 4 + rows * (width + (width === 16 ? 2 : 8)) * 2;
  return tiles + scratch + 4 + SHARED_EXTRA;
}

/**
 * Whether `forward` runs for these head-dim buckets on `caps` (threads, storage, register arrays); `direct`: the
 * matrix forward's DIRECT_KV form (no key and value tiles in workgroup memory).
 */
export function forwardTilesFit(forward: ForwardTiles, headDimQk: number, headDimV: number, caps: FlashCaps, direct = false): boolean {
  const [qk, v] = [headDimBucket(headDimQk), headDimBucket(headDimV)];
  if (forward.kernel === 'matrix') {
    return (
      matrixForwardUnavailable('f16', caps) === null &&
      forward.threads <= caps.maxComputeInvocationsPerWorkgroup &&
      (MATRIX_SUBGROUPS as readonly number[]).includes(forward.threads / MATRIX_SUBGROUP_SIZE) &&
      (MATRIX_ROW_BLOCKS as readonly number[]).includes(forward.rowsPerThread) &&
      (MATRIX_KEYS as readonly number[]).includes(forward.keys) &&
      Math.max(qk, v) <= MATRIX_MAX_HEAD_DIM &&
      matrixForwardStorage(forward, qk, v, direct) <= caps.maxComputeWorkgroupStorageSize
    );
  }
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

/**
 * The tiled forward's default threads and key threads (keys per tile = 4 ×) per head-dim bucket, two rows per
 * thread: what the GPU-timestamp tuner chose on an H100/H200, or the fastest shape that keeps masked runs within 15%.
 * D16: 128 threads (bench notes entry 31, H200, seed shape: 1.02–1.03× the 64-thread shape with every option; 256
 * threads ran unmasked 1.11× faster but causal 1.07× slower, 128-row blocks wasting more of the causal triangle). D32:
 * 256 threads × 8 key threads (entry 31: 1.11× forward, and its backward shapes 1.17×). D64: 256 × 8. From D128 on 4
 * key threads (at B2 H16 N4096 D128 the 16-key tiles ran the forward 1.55× and its backward 1.83× faster than 32-key
 * ones).
 */
const TILED_FORWARD_SHAPES: Readonly<Record<number, { readonly threads: number; readonly keyThreads: number }>> = {
  16: { threads: 128, keyThreads: 4 },
  32: { threads: 256, keyThreads: 8 },
  64: { threads: 256, keyThreads: 8 },
  128: { threads: 256, keyThreads: 4 },
  256: { threads: 256, keyThreads: 4 },
};

/** The tiled forward's default shape: TILED_FORWARD_SHAPES' entry, with fewer rows, threads, then key threads until it fits. */
function defaultTiledForward(headDimQk: number, headDimV: number, caps: FlashCaps): ForwardTiles | null {
  const preferred = TILED_FORWARD_SHAPES[headDimV] ?? TILED_FORWARD_SHAPES[MAX_HEAD_DIM]!;
  for (const keyThreads of TILED_KEY_THREADS.filter((kt) => kt <= preferred.keyThreads).reverse()) {
    for (const threads of [256, 128, 64].filter((t) => t <= preferred.threads)) {
      for (const rowsPerThread of [2, 1]) {
        const tiles: ForwardTiles = { kernel: 'tiled', threads, rowsPerThread, keys: 4 * keyThreads };
        if (forwardTilesFit(tiles, headDimQk, headDimV, caps)) return tiles;
      }
    }
  }
  return null;
}

/**
 * The matrix forward's default (tools/bench/README.md, entries 11, 13, 14 and 21). With direct key and value loads
 * (`directKeyValues`), at every head dim up to 128: one subgroup × one 16-row block with 16-key tiles at D16 (entry
 * 23, with the sampler's heater: B32 H8 N500 forward 0.189 ms against 0.202–0.204 for two subgroups, causal 0.114–0.120
 * against 0.124, dropout the same; entry 21's bimodal one-subgroup runs were the GPU clock drops of entry 22), and
 * one subgroup × 32-key tiles at D32, D64 and D128 (the GPU-timestamp tuner's choice: at D64 and D128 on the H200
 * and the H100, at B4 H16 N4096 D64 1.09× the 2-subgroup shape on the H100; at D32 on the H100, entry 24, B8 H16
 * N1024: 0.531 ms against 0.561–0.568 for two subgroups, causal 0.295 against 0.303). Staged through workgroup memory only for head dims
 * up to 32: 8 subgroups × 16 keys at D16 (1.48× the best tiled shape at B32 H8 N500), 8 × 32 keys at D32 (GPU
 * timestamps, four runs: 1.28–1.31 ms vs 1.84–1.88 ms for 4 × 16, B8 H16 N1024); staged, D64 ran 2.3× and D128
 * 3.2× slower than the tiled kernel, so those stay tiled.
 */
function defaultMatrixForward(headDimQk: number, headDimV: number, caps: FlashCaps, direct: boolean): ForwardTiles | null {
  const bucket = Math.max(headDimBucket(headDimQk), headDimBucket(headDimV));
  // [subgroups, keys per tile], the first that fits.
  const directShapes: [number, number][] = bucket <= 16 ? [[1, 16], [2, 16], [4, 16]] : bucket <= 32 ? [[1, 32], [2, 32], [2, 16], [1, 16]] : [[1, 32], [1, 16], [2, 16]];
  const stagedShapes: [number, number][] = bucket <= 16 ? [[8, 16], [4, 16], [2, 16]] : bucket <= 32 ? [[8, 32], [4, 16], [8, 16], [2, 16]] : [];
  const shapes = direct ? directShapes : stagedShapes;
  for (const [subgroups, keys] of shapes) {
    const tiles: ForwardTiles = { kernel: 'matrix', threads: subgroups * MATRIX_SUBGROUP_SIZE, rowsPerThread: 1, keys };
    if (forwardTilesFit(tiles, headDimQk, headDimV, caps, direct)) return tiles;
  }
  return null;
}

/** A tiled backward kernel's shape: threads, rows (dQ) or keys (dK/dV) per thread, threads per row group. */
export interface TiledShape {
  readonly threads: number;
  readonly rowsPerThread: number;
  readonly keyThreads: number;
}

/**
 * Whether the tiled forward passes its row maxima and weights P through subgroup shuffles (its SHUFFLE_P) instead
 * of workgroup memory: where every subgroup size the device may use holds a row group's key threads (adjacent
 * invocations, as the matrix kernels also assume), at compiled value head dims up to 32 (bench notes, entry 26, H200:
 * 1.17× at D16 and 1.11× at D32, but 0.94× at D64, where 64 shuffles per key tile cost more than the barriers).
 */
export function tiledForwardShuffles(caps: Pick<FlashCaps, 'subgroups' | 'subgroupMinSize'>, forward: ForwardTiles, headDimV: number): boolean {
  return forward.kernel === 'tiled' && Boolean(caps.subgroups) && (caps.subgroupMinSize ?? 0) >= forward.keys / 4 && headDimV <= 32;
}

/**
 * The vec4s of one tile's rows (`rows` × `headDim`) that each of `threads` threads reads into registers, where the
 * tiled kernels read the next tile while computing this one (the forward's and dQ's K_LOADS and V_LOADS: key
 * tiles; dK/dV's Q_LOADS and G_LOADS: query tiles).
 */
export function tileLoads(rows: number, headDim: number, threads: number): number {
  return Math.ceil((rows * (headDim / 4)) / threads);
}

/** Workgroup bytes of flash-backward-query-tiled.wgsl. */
export function tiledQueryStorage(shape: TiledShape, headDimQk: number, headDimV: number): number {
  const rows = (shape.threads / shape.keyThreads) * shape.rowsPerThread;
  const [qk4, v4] = [headDimBucket(headDimQk) / 4, headDimBucket(headDimV) / 4];
  const vec4s = rows * (qk4 + 1) + rows * (v4 + 1) + 4 * (qk4 + v4) * (shape.keyThreads + 1) + rows * (shape.keyThreads + 1);
  return vec4s * 16 + SHARED_EXTRA;
}

/** Workgroup bytes of flash-backward-key-value-tiled.wgsl. */
export function tiledKeyValueStorage(shape: TiledShape, headDimQk: number, headDimV: number): number {
  const keys = (shape.threads / shape.keyThreads) * shape.rowsPerThread;
  const [qk4, v4] = [headDimBucket(headDimQk) / 4, headDimBucket(headDimV) / 4];
  const vec4s = keys * (qk4 + 1) + keys * (v4 + 1) + 4 * (qk4 + v4) * (shape.keyThreads + 1) + 2 * keys * (shape.keyThreads + 1);
  // Five row statistics (logsumexp, residual, delta, key bounds) of 4 · key threads rows; the key marks.
  return vec4s * 16 + 5 * 4 * shape.keyThreads * 4 + keys * 4 + SHARED_EXTRA;
}

/**
 * The tiled backward's shapes per compiled head dim (the larger of q·k's and v's), chosen apart from the forward's:
 * the fastest of a sweep over both kernels' threads, rows (keys) per thread and key threads on an H200 (bench notes,
 * entry 27). At D16 and D32 dQ then stages 32-key tiles and dK/dV 16-row tiles on 128–256 threads, where shapes
 * derived from the forward's 16-key tiles gave 64 threads (f32 seed backward 1.51 → 1.23 ms, D32 6.8 → 5.6); at D64
 * the forward-derived 128 × 2 × 8 was already the fastest of the shapes timed. Since the dK/dV reads its row
 * statistics ahead (entry 30), tuneFlashBackward chose 256 × 2 × 8 for dK/dV at D32 on an H200 (entry 31).
 */
const TILED_QUERY_SHAPES: Readonly<Partial<Record<number, TiledShape>>> = {
  16: { threads: 256, rowsPerThread: 2, keyThreads: 8 },
  32: { threads: 256, rowsPerThread: 2, keyThreads: 8 },
  64: { threads: 128, rowsPerThread: 2, keyThreads: 8 },
};
const TILED_KEY_VALUE_SHAPES: Readonly<Partial<Record<number, TiledShape>>> = {
  16: { threads: 128, rowsPerThread: 2, keyThreads: 4 },
  32: { threads: 256, rowsPerThread: 2, keyThreads: 8 },
  64: { threads: 128, rowsPerThread: 2, keyThreads: 8 },
};

/** How a tiled backward kernel's shape is sized: its workgroup bytes and accumulator registers per thread. */
interface TiledCosts {
  readonly storage: (shape: TiledShape) => number;
  readonly registers: (shape: TiledShape) => number;
}

/** The two tiled backward kernels: dQ ('query') and dK/dV ('keyValue'). */
export type TiledBackwardKernel = 'query' | 'keyValue';

function tiledCosts(kernel: TiledBackwardKernel, headDimQk: number, headDimV: number): TiledCosts {
  return kernel === 'query'
    ? { storage: (shape) => tiledQueryStorage(shape, headDimQk, headDimV), registers: (shape) => (shape.rowsPerThread * headDimQk) / shape.keyThreads }
    : {
        storage: (shape) => tiledKeyValueStorage(shape, headDimQk, headDimV),
        registers: (shape) => (shape.rowsPerThread * (headDimQk + headDimV)) / shape.keyThreads,
      };
}

/** Whether `shape` runs as the tiled dQ or dK/dV kernel at these head dims (buckets) on `caps`. */
export function tiledBackwardFits(kernel: TiledBackwardKernel, shape: TiledShape, headDimQk: number, headDimV: number, caps: FlashCaps): boolean {
  const [qk, v] = [headDimBucket(headDimQk), headDimBucket(headDimV)];
  return tiledShapeFits(shape, Math.min(qk, v), tiledCosts(kernel, qk, v), caps);
}

/**
 * Whether a tiled backward shape runs on the device: key threads that divide the threads and the head dims (each
 * thread owns head dims tx, tx + key threads, ...), at most 64 accumulators per thread, the workgroup within the
 * device's invocation and storage limits, and rows (dQ) or keys (dK/dV) per workgroup that divide KEY_STEP (key
 * chunks hold whole workgroups).
 */
function tiledShapeFits(shape: TiledShape, headDims: number, costs: TiledCosts, caps: FlashCaps): boolean {
  const perWorkgroup = (shape.threads / shape.keyThreads) * shape.rowsPerThread;
  return (
    shape.threads % shape.keyThreads === 0 &&
    // dK/dV: a thread per row of its 4 · key threads query tiles holds the row's logsumexp and delta.
    shape.threads >= 4 * shape.keyThreads &&
    headDims % shape.keyThreads === 0 &&
    KEY_STEP % perWorkgroup === 0 &&
    shape.threads <= (caps.maxComputeInvocationsPerWorkgroup || 256) &&
    costs.registers(shape) <= 64 &&
    costs.storage(shape) <= caps.maxComputeWorkgroupStorageSize
  );
}

/**
 * A tiled backward kernel's shape for a tiled forward: the device's tuned shape (`tuned`, tuneFlashBackward) where it
 * fits, else the head dim's entry of `preferred` with fewer threads until it fits, else the forward's key threads and
 * rows per thread with fewer threads (then rows) until it fits; null where none fits (the compact family runs then).
 */
function tiledBackwardShape(
  forward: ForwardTiles,
  preferred: Readonly<Partial<Record<number, TiledShape>>>,
  tuned: TiledShape | undefined,
  headDimQk: number,
  headDimV: number,
  costs: TiledCosts,
  caps: FlashCaps,
): TiledShape | null {
  if (forward.kernel !== 'tiled') return null;
  const candidates: TiledShape[] = tuned ? [tuned] : [];
  const table = preferred[Math.max(headDimQk, headDimV)];
  if (table) for (let threads = table.threads; threads >= 64; threads /= 2) candidates.push({ ...table, threads });
  const keyThreads = forward.keys / 4;
  for (const rowsPerThread of [...FORWARD_ROWS_PER_THREAD].reverse().filter((rows) => rows <= forward.rowsPerThread)) {
    for (const threads of [forward.threads, 128, 64].filter((t, i, all) => t <= forward.threads && all.indexOf(t) === i)) {
      candidates.push({ threads, rowsPerThread, keyThreads });
    }
  }
  const headDims = Math.min(headDimQk, headDimV);
  return candidates.find((shape) => tiledShapeFits(shape, headDims, costs, caps)) ?? null;
}

/** The matrix dQ kernel's workgroup shape (flash-backward-query-matrix.wgsl): subgroups (16 query rows each) and keys per tile. */
export interface MatrixQueryShape {
  readonly subgroups: number;
  readonly keys: number;
}

/** The matrix dK/dV kernel's workgroup shape (flash-backward-key-value-matrix.wgsl): subgroups (16 keys each) and query rows per tile. */
export interface MatrixKeyValueShape {
  readonly subgroups: number;
  readonly rows: number;
}

/** The matrix dQ and dK/dV shapes of one backward (f16 after the matrix forward's direct form). */
export interface MatrixBackwardShapes {
  readonly query: MatrixQueryShape;
  readonly keyValue: MatrixKeyValueShape;
}

/**
 * The matrix backward kernels' subgroups per workgroup and keys (dQ) or query rows (dK/dV) per tile: the padded k and
 * v copies hold whole 64-row tiles, so dQ's tiles and dK/dV's keys per workgroup (16 a subgroup) stay within 64.
 */
export const MATRIX_BACKWARD_SUBGROUPS = [1, 2, 4] as const;
export const MATRIX_BACKWARD_TILES = [16, 32, 64] as const;

/** Whether a matrix dQ or dK/dV shape is one the kernels compile (storage and threads aside: firstFittingMatrixShape). */
export function matrixBackwardShapeValid(shape: MatrixQueryShape | MatrixKeyValueShape): boolean {
  const tile = 'keys' in shape ? shape.keys : shape.rows;
  return (MATRIX_BACKWARD_SUBGROUPS as readonly number[]).includes(shape.subgroups) && (MATRIX_BACKWARD_TILES as readonly number[]).includes(tile);
}

/**
 * The backward kernels' shapes tuned for one device (tuneFlashBackward), each where it was tuned: the tiled dQ and
 * dK/dV (`query`, `keyValue`) and the matrix ones (`matrixQuery`, `matrixKeyValue`).
 */
export interface TunedBackwardShapes {
  readonly query?: TiledShape;
  readonly keyValue?: TiledShape;
  readonly matrixQuery?: MatrixQueryShape;
  readonly matrixKeyValue?: MatrixKeyValueShape;
}

/** A device's table in `tables` (created empty on first use), keyed by forwardTuningKey. */
function deviceTable<T>(tables: WeakMap<GPUDevice, Map<string, T>>, gpu: GPUDevice): Map<string, T> {
  let table = tables.get(gpu);
  if (!table) {
    table = new Map();
    tables.set(gpu, table);
  }
  return table;
}

/** Tuned backward shapes per device (flash-tuning.ts fills it), keyed by forwardTuningKey. */
const TUNED_BACKWARD = new WeakMap<GPUDevice, Map<string, TunedBackwardShapes>>();

/** The device's tuned backward shapes (a live map: tuning writes into it). */
export function tunedBackwardShapesOf(gpu: GPUDevice): Map<string, TunedBackwardShapes> {
  return deviceTable(TUNED_BACKWARD, gpu);
}

/** The tiled backward shapes tuned for this device, dtype and head dims, if `tuneFlashBackward` chose some. */
export function tunedBackwardShapes(gpu: GPUDevice, dtype: string, headDimQk: number, headDimV: number): TunedBackwardShapes | undefined {
  return TUNED_BACKWARD.get(gpu)?.get(forwardTuningKey(dtype, headDimQk, headDimV));
}

/** Tuned forward tiles per device (flash-tuning.ts fills it), keyed by forwardTuningKey. */
const TUNED_FORWARD = new WeakMap<GPUDevice, Map<string, ForwardTiles>>();

export const forwardTuningKey = (dtype: string, headDimQk: number, headDimV: number) =>
  `${dtype}|${headDimBucket(headDimQk)}|${headDimBucket(headDimV)}`;

/** The device's tuned forward tiles (a live map: tuning writes into it). */
export function tunedForwardTilesOf(gpu: GPUDevice): Map<string, ForwardTiles> {
  return deviceTable(TUNED_FORWARD, gpu);
}

/** The tuned forward tiles for this device, dtype and head dims, if `tuneFlashForward` chose some. */
export function tunedForwardTiles(gpu: GPUDevice, dtype: string, headDimQk: number, headDimV: number): ForwardTiles | undefined {
  return TUNED_FORWARD.get(gpu)?.get(forwardTuningKey(dtype, headDimQk, headDimV));
}

/**
 * Tile sizes for a problem on a device. `forward` (a tuned choice, see flash-tuning.ts) replaces the forward's
 * default kernel and workgroup shape when it fits. f16 problems take the subgroup-matrix forward by default where
 * the device has it (`matrixForwardUnavailable`): with `directKeyValues` (the problem allows padded k and v copies,
 * `paddedKeyValuesUnavailable`) at head dims up to 128, else up to 32; tuning may choose it for others. `backward`
 * (tuned shapes, see tuneFlashBackward) replaces the tiled dQ's and dK/dV's default shapes where they fit, and its
 * matrix shapes pass to the matrix dQ and dK/dV (with the matrix forward's direct form).
 */
export function chooseTiles(
  problem: Pick<AttentionProblem, 'headDimQk' | 'headDimV'> & { readonly dtype?: string; readonly directKeyValues?: boolean },
  caps: FlashCaps,
  forward?: ForwardTiles,
  backward?: TunedBackwardShapes,
): FlashTiles | null {
  const headDimQk = headDimBucket(problem.headDimQk);
  const headDimV = headDimBucket(problem.headDimV);
  const storage = caps.maxComputeWorkgroupStorageSize;
  const threads = Math.min(64, caps.maxComputeInvocationsPerWorkgroup || 64);
  const keys = largestTile((headDimQk + headDimV) * 4, storage, MIN_TILE);
  const f16 = problem.dtype === 'f16';
  const direct = f16 && (problem.directKeyValues ?? false);
  const tuned =
    forward && forwardTilesFit(forward, headDimQk, headDimV, caps, direct) && (forward.kernel !== 'matrix' || f16) ? forward : null;
  const compact = tuned?.kernel === 'compact' ? tuned : null;
  // The compact dK/dV stages per query row q, dO, logsumexp, its residual and delta, and the dropout keep bits of
  // its threads · rows keys (one bit each).
  const compactRows = compact?.rowsPerThread ?? forwardRowsPerThread(headDimQk + headDimV);
  const backwardRows = largestTile((headDimQk + headDimV + 3 + (threads * compactRows) / 32) * 4, storage, 1);
  if (keys === null || backwardRows === null) return null;
  const compactTiles: ForwardTiles = {
    kernel: 'compact',
    threads: compact?.threads ?? threads,
    rowsPerThread: compactRows,
    keys: compact?.keys ?? Math.min(keys, FORWARD_MAX_TILE),
  };
  // The tiled forward and backward run as one family (their scores are summed in the same order, so P is exact):
  // tiled only when both tiled backward kernels fit too. A compact forward keeps the compact backward; the
  // matrix forward (tensor cores sum in their own order anyway) takes the default tiled backward.
  const tiled = tuned?.kernel === 'tiled' ? tuned : compact ? null : defaultTiledForward(headDimQk, headDimV, caps);
  const tiledQuery =
    tiled && tiledBackwardShape(tiled, TILED_QUERY_SHAPES, backward?.query, headDimQk, headDimV, tiledCosts('query', headDimQk, headDimV), caps);
  const tiledKeyValue =
    tiled &&
    tiledBackwardShape(tiled, TILED_KEY_VALUE_SHAPES, backward?.keyValue, headDimQk, headDimV, tiledCosts('keyValue', headDimQk, headDimV), caps);
  const family = tiled && tiledQuery && tiledKeyValue ? { forward: tiled, tiledQuery, tiledKeyValue } : null;
  const matrix = tuned?.kernel === 'matrix' ? tuned : !tuned && f16 ? defaultMatrixForward(headDimQk, headDimV, caps, direct) : null;
  return {
    headDimQk,
    headDimV,
    rows: threads,
    keys,
    forward: matrix ?? family?.forward ?? compactTiles,
    directKeyValues: matrix !== null && direct,
    tiledQuery: family?.tiledQuery ?? null,
    tiledKeyValue: family?.tiledKeyValue ?? null,
    matrixQuery: (matrix && direct && backward?.matrixQuery) || null,
    matrixKeyValue: (matrix && direct && backward?.matrixKeyValue) || null,
    forwardThreads: compactTiles.threads,
    forwardRowsPerThread: compactTiles.rowsPerThread,
    forwardKeys: compactTiles.keys,
    backwardKeys: threads,
    backwardRows,
  };
}

/**
 * The tiles a recording uses on `gpu`: chooseTiles with the device's tuned forward, so that the forward and its
 * backward agree on the kernel family and shape (a tiled or compact forward's scores are summed in the same order
 * as its backward's), and its tuned backward shapes. On a device whose subgroup matrices are emulated for tests,
 * with the emulated caps.
 */
export function recordingTiles(
  gpu: GPUDevice,
  problem: Pick<AttentionProblem, 'dtype' | 'headDimQk' | 'headDimV'> & { readonly directKeyValues?: boolean },
  caps: FlashCaps,
): FlashTiles | null {
  const effective = subgroupMatricesEmulated(gpu) ? withEmulatedMatrices(caps) : caps;
  const [dtype, qk, v] = [problem.dtype, problem.headDimQk, problem.headDimV];
  return chooseTiles(problem, effective, tunedForwardTiles(gpu, dtype, qk, v), tunedBackwardShapes(gpu, dtype, qk, v));
}

/** Bytes of workgroup storage the smallest tiles need (for rejection messages). */
export function minimumStorage(problem: Pick<AttentionProblem, 'headDimQk' | 'headDimV'>): number {
  return MIN_TILE * (headDimBucket(problem.headDimQk) + headDimBucket(problem.headDimV)) * 4 + SHARED_EXTRA;
}
