import { bestTimingMethod, createCallSampler, median, randn, type CallSampler, type Device, type Tensor, type TimingMethod } from '@webattn/tensor';
import { flashAttention, flashAttentionGrad } from './flash-attention';
import {
  FORWARD_ROWS_PER_THREAD,
  MATRIX_KEYS,
  MATRIX_ROW_BLOCKS,
  MATRIX_SUBGROUP_SIZE,
  MATRIX_SUBGROUPS,
  TILED_KEY_THREADS,
  chooseTiles,
  forwardTilesFit,
  forwardTuningKey,
  headDimBucket,
  recordingTiles,
  tiledBackwardFits,
  tunedBackwardShapesOf,
  tunedForwardTilesOf,
  type ForwardTiles,
  type TiledBackwardKernel,
  type TiledShape,
} from './flash-tiles';

/**
 * Autotuning of the forward kernel's workgroup shape: `tuneFlashForward(device)` times every candidate
 * (kernel × threads × query rows per thread × keys per tile) on a small problem per dtype and head-dim bucket and keeps
 * the fastest for that device; later flash forwards on the device use it (chooseTiles' default otherwise).
 * Candidates are timed by GPU timestamps where the device has 'timestamp-query' (wall clock, which also counts
 * recording and submission, misled small problems' choices on the H200), else by wall clock.
 * The choice lives as long as the device; benchmarks print it.
 */

/** One dtype and head-dim bucket's search: every candidate's time and the choice. */
export interface ForwardTuning {
  readonly dtype: 'f32' | 'f16';
  readonly headDim: number;
  readonly shape: readonly [number, number, number, number];
  readonly candidates: readonly { readonly tiles: ForwardTiles; readonly ms: number }[];
  /** How the candidates were timed: GPU timestamps where the device has 'timestamp-query', else wall clock. */
  readonly method: TimingMethod;
  /** The default tiles' time, for comparison. */
  readonly defaultTiles: ForwardTiles;
  readonly chosen: ForwardTiles;
}

export interface TuneOptions {
  /** Head dims to tune (each stands for its bucket). Default [64]. */
  readonly headDims?: readonly number[];
  /** Default: f32, and f16 where the device has shader-f16. */
  readonly dtypes?: readonly ('f32' | 'f16')[];
  /** [batch, heads, length] of the timed problem. Default [1, 8, 2048]. */
  readonly shape?: readonly [number, number, number];
  /** Calls per sample (three samples per candidate, after one warm-up call; the median counts). Default 8. */
  readonly iterations?: number;
  /** Candidates to time (default: forwardCandidates, every shape that fits). */
  readonly candidates?: readonly ForwardTiles[];
}

/**
 * Every forward kernel and workgroup shape that fits this device, dtype and head dim: in f16 the subgroup-matrix
 * ones first (where the device has them; in their direct form, which the timed problem takes), then tiled, then
 * compact.
 */
export function forwardCandidates(device: Device, headDim: number, dtype: 'f32' | 'f16' = 'f32'): ForwardTiles[] {
  const candidates: ForwardTiles[] = [];
  if (dtype === 'f16') {
    for (const subgroups of MATRIX_SUBGROUPS) {
      for (const rowsPerThread of MATRIX_ROW_BLOCKS) {
        for (const keys of MATRIX_KEYS) {
          const tiles: ForwardTiles = { kernel: 'matrix', threads: subgroups * MATRIX_SUBGROUP_SIZE, rowsPerThread, keys };
          if (forwardTilesFit(tiles, headDim, headDim, device.caps, true)) candidates.push(tiles);
        }
      }
    }
  }
  const defaults = chooseTiles({ headDimQk: headDim, headDimV: headDim }, device.caps);
  const compactKeys = new Set([8, 16, 32, ...(defaults ? [defaults.forwardKeys] : [])]);
  const keysOf = { tiled: TILED_KEY_THREADS.map((threads) => 4 * threads), compact: [...compactKeys].sort((a, b) => a - b) };
  for (const kernel of ['tiled', 'compact'] as const) {
    for (const threads of [64, 128, 256]) {
      for (const rowsPerThread of FORWARD_ROWS_PER_THREAD) {
        for (const keys of keysOf[kernel]) {
          const tiles = { kernel, threads, rowsPerThread, keys };
          // A tiled forward runs only with its tiled backward (chooseTiles keeps the family): both must fit.
          const runs = kernel === 'compact' || chooseTiles({ headDimQk: headDim, headDimV: headDim }, device.caps, tiles)?.forward === tiles;
          if (forwardTilesFit(tiles, headDim, headDim, device.caps) && runs) candidates.push(tiles);
        }
      }
    }
  }
  return candidates;
}

/** GPU milliseconds of untimed calls before the first candidate is timed. */
const WARM_UP_MS = 300;

/**
 * A GPU that idled (e.g. while the host drew inputs) clocks down and the first candidates would read slow: keep it
 * busy with `call` for WARM_UP_MS first (bench notes, entry 14).
 */
async function warmUp(sampler: CallSampler, call: () => Tensor[]): Promise<void> {
  for (let spent = 0, calls = 0; spent < WARM_UP_MS && calls < 256; calls += 4) spent += (await sampler.sample(call, 4)) * 4;
}

/** A candidate's time per call: one call that compiles its pipelines, then the median of three samples of `iterations` calls. */
async function timeCall(sampler: CallSampler, call: () => Tensor[], iterations: number): Promise<number> {
  await sampler.sample(call, 1);
  const samples: number[] = [];
  for (let sample = 0; sample < 3; sample++) samples.push(await sampler.sample(call, iterations));
  return median(samples);
}

/** A search's timed problem, calls per sample, dtypes (TuneOptions' defaults) and sampler (destroy it when done). */
function searchSetup(device: Device, options: Omit<TuneOptions, 'candidates'>) {
  const [batch, heads, length] = options.shape ?? [1, 8, 2048];
  return {
    batch,
    heads,
    length,
    iterations: options.iterations ?? 8,
    dtypes: options.dtypes ?? (device.caps.shaderF16 ? (['f32', 'f16'] as const) : (['f32'] as const)),
    sampler: createCallSampler(device, bestTimingMethod(device)),
  };
}

/** Times the forward candidates and keeps the fastest per dtype and head-dim bucket for this device. */
export async function tuneFlashForward(device: Device, options: TuneOptions = {}): Promise<ForwardTuning[]> {
  if (!device.isGpu) return [];
  const { batch, heads, length, iterations, dtypes, sampler } = searchSetup(device, options);
  const tuned = tunedForwardTilesOf(device.gpu);
  const results: ForwardTuning[] = [];
  try {
    for (const dtype of dtypes) {
      for (const headDim of options.headDims ?? [64]) {
        const shape = [batch, heads, length, headDim] as const;
        const key = forwardTuningKey(dtype, headDim, headDim);
        const [q, k, v] = [1, 2, 3].map((seed) => randn(device, [...shape], { seed, dtype })) as [Tensor, Tensor, Tensor];
        const call = () => {
          const { out, logsumexp } = flashAttention(q, k, v);
          return [out, logsumexp];
        };
        const candidates: { tiles: ForwardTiles; ms: number }[] = [];
        try {
          await warmUp(sampler, call);
          for (const tiles of options.candidates ?? forwardCandidates(device, headDim, dtype)) {
            tuned.set(key, tiles);
            candidates.push({ tiles, ms: await timeCall(sampler, call, iterations) });
          }
        } finally {
          tuned.delete(key);
          for (const t of [q, k, v]) t.dispose();
        }
        const problem = { dtype, headDimQk: headDim, headDimV: headDim, directKeyValues: true };
        const defaultTiles = chooseTiles(problem, device.caps)!.forward;
        const best = candidates.reduce((a, b) => (b.ms < a.ms ? b : a));
        tuned.set(key, best.tiles);
        results.push({ dtype, headDim: headDimBucket(headDim), shape, candidates, method: sampler.method, defaultTiles, chosen: best.tiles });
      }
    }
  } finally {
    sampler.destroy();
  }
  return results;
}

/** A tuning choice as saved by an app (e.g. JSON in localStorage): enough to restore it without re-timing. */
export interface SavedForwardTuning {
  readonly dtype: ForwardTuning['dtype'];
  readonly headDim: number;
  /** Choices saved before the tiled kernel existed have no `kernel` (they are compact shapes). */
  readonly chosen: Omit<ForwardTiles, 'kernel'> & { readonly kernel?: ForwardTiles['kernel'] };
}

/**
 * Restores choices `tuneFlashForward` made earlier (on the same adapter), so an app can save them once and skip
 * the search at later starts. Choices that do not fit this device are skipped; returns how many were applied.
 */
export function restoreFlashTuning(device: Device, saved: readonly SavedForwardTuning[]): number {
  if (!device.isGpu) return 0;
  const tuned = tunedForwardTilesOf(device.gpu);
  let applied = 0;
  for (const { dtype, headDim, chosen } of saved) {
    // Choices saved before the tiled kernel existed have no `kernel`: they are compact shapes.
    const tiles: ForwardTiles = { kernel: chosen.kernel ?? 'compact', threads: chosen.threads, rowsPerThread: chosen.rowsPerThread, keys: chosen.keys };
    // The matrix forward is f16 only: chooseTiles would ignore it for f32, so it is not restored (nor counted).
    if (tiles.kernel === 'matrix' && dtype !== 'f16') continue;
    if (!forwardTilesFit(tiles, headDim, headDim, device.caps)) continue;
    tuned.set(forwardTuningKey(dtype, headDim, headDim), tiles);
    applied++;
  }
  return applied;
}

/** The tiled dQ and dK/dV shapes of one backward. */
export interface BackwardShapes {
  readonly query: TiledShape;
  readonly keyValue: TiledShape;
}

/** One dtype and head-dim bucket's backward search: every candidate's backward time, the defaults and the choice. */
export interface BackwardTuning {
  readonly dtype: 'f32' | 'f16';
  readonly headDim: number;
  readonly shape: readonly [number, number, number, number];
  /** dQ's shapes timed with dK/dV at its default, then dK/dV's with dQ at its choice (ms per backward call). */
  readonly candidates: { readonly [K in TiledBackwardKernel]: readonly { readonly shape: TiledShape; readonly ms: number }[] };
  readonly method: TimingMethod;
  readonly defaultShapes: BackwardShapes;
  readonly chosen: BackwardShapes;
}

export interface BackwardTuneOptions extends Omit<TuneOptions, 'candidates'> {
  /** Shapes to time per kernel (default: backwardCandidates; the default shape is always timed too). */
  readonly candidates?: { readonly [K in TiledBackwardKernel]?: readonly TiledShape[] };
}

/** Threads, rows (dQ) or keys (dK/dV) per thread and key threads the backward search tries. */
const BACKWARD_THREADS = [64, 128, 256] as const;
const BACKWARD_ROWS_PER_THREAD = [1, 2, 4] as const;

/** Every tiled dQ (`kernel` 'query') or dK/dV ('keyValue') shape that fits this device at this head dim. */
export function backwardCandidates(device: Device, kernel: TiledBackwardKernel, headDim: number): TiledShape[] {
  const candidates: TiledShape[] = [];
  for (const threads of BACKWARD_THREADS) {
    for (const rowsPerThread of BACKWARD_ROWS_PER_THREAD) {
      for (const keyThreads of TILED_KEY_THREADS) {
        const shape = { threads, rowsPerThread, keyThreads };
        if (tiledBackwardFits(kernel, shape, headDim, headDim, device.caps)) candidates.push(shape);
      }
    }
  }
  return candidates;
}

const sameShape = (a: TiledShape, b: TiledShape) => a.threads === b.threads && a.rowsPerThread === b.rowsPerThread && a.keyThreads === b.keyThreads;

/**
 * Autotuning of the tiled backward's workgroup shapes (chooseTiles' `tiledQuery` and `tiledKeyValue`, a table
 * measured on an H200 by default): for each dtype and head-dim bucket whose forward is tiled on this device (with its
 * tuned forward, if any), times the backward with every dQ shape (dK/dV at its default), then with every dK/dV shape
 * (dQ at the fastest), and keeps the fastest of each for the device; later backwards use them. Where the forward is
 * not tiled (the compact family, or f16 on subgroup matrices, whose backward is the matrix one) nothing is tuned
 * and no result is returned. Timing as in tuneFlashForward.
 */
export async function tuneFlashBackward(device: Device, options: BackwardTuneOptions = {}): Promise<BackwardTuning[]> {
  if (!device.isGpu) return [];
  const { batch, heads, length, iterations, dtypes, sampler } = searchSetup(device, options);
  const tuned = tunedBackwardShapesOf(device.gpu);
  const results: BackwardTuning[] = [];
  try {
    for (const dtype of dtypes) {
      for (const headDim of options.headDims ?? [64]) {
        const key = forwardTuningKey(dtype, headDim, headDim);
        const previous = tuned.get(key);
        tuned.delete(key);
        // The timed problem's k and v allow the matrix forward's direct form (as in tuneFlashForward).
        const problem = { dtype, headDimQk: headDim, headDimV: headDim, directKeyValues: true };
        const defaults = recordingTiles(device.gpu, problem, device.caps);
        if (!defaults || defaults.forward.kernel !== 'tiled' || !defaults.tiledQuery || !defaults.tiledKeyValue) {
          if (previous) tuned.set(key, previous);
          continue;
        }
        const defaultShapes: BackwardShapes = { query: defaults.tiledQuery, keyValue: defaults.tiledKeyValue };
        const shape = [batch, heads, length, headDim] as const;
        const [q, k, v, gradOut] = [1, 2, 3, 4].map((seed) => randn(device, [...shape], { seed, dtype })) as [Tensor, Tensor, Tensor, Tensor];
        const { out, logsumexp } = flashAttention(q, k, v);
        const call = () => {
          const { dq, dk, dv } = flashAttentionGrad(q, k, v, out, logsumexp, gradOut);
          return [dq, dk, dv];
        };
        const candidates: { [K in TiledBackwardKernel]: { shape: TiledShape; ms: number }[] } = { query: [], keyValue: [] };
        const chosen = { ...defaultShapes };
        try {
          await warmUp(sampler, call);
          for (const kernel of ['query', 'keyValue'] as const) {
            const listed = options.candidates?.[kernel] ?? backwardCandidates(device, kernel, headDim);
            const shapes = listed.some((shape) => sameShape(shape, defaultShapes[kernel])) ? listed : [defaultShapes[kernel], ...listed];
            for (const shape of shapes) {
              // The candidate must be what runs (chooseTiles takes a tuned shape only where it fits).
              if (!tiledBackwardFits(kernel, shape, headDim, headDim, device.caps)) continue;
              tuned.set(key, { ...chosen, [kernel]: shape });
              candidates[kernel].push({ shape, ms: await timeCall(sampler, call, iterations) });
            }
            chosen[kernel] = candidates[kernel].reduce((a, b) => (b.ms < a.ms ? b : a)).shape;
          }
          tuned.set(key, chosen);
        } catch (error) {
          if (previous) tuned.set(key, previous);
          else tuned.delete(key);
          throw error;
        } finally {
          for (const t of [q, k, v, gradOut, out, logsumexp]) t.dispose();
        }
        results.push({ dtype, headDim: headDimBucket(headDim), shape, candidates, method: sampler.method, defaultShapes, chosen });
      }
    }
  } finally {
    sampler.destroy();
  }
  return results;
}

/** A backward tuning choice as saved by an app (BackwardTuning's dtype, headDim and chosen). */
export interface SavedBackwardTuning {
  readonly dtype: BackwardTuning['dtype'];
  readonly headDim: number;
  readonly chosen: BackwardShapes;
}

/**
 * Restores choices `tuneFlashBackward` made earlier (on the same adapter). Choices whose shapes do not fit this
 * device are skipped; returns how many were applied.
 */
export function restoreFlashBackwardTuning(device: Device, saved: readonly SavedBackwardTuning[]): number {
  if (!device.isGpu) return 0;
  const tuned = tunedBackwardShapesOf(device.gpu);
  let applied = 0;
  for (const { dtype, headDim, chosen } of saved) {
    const query = { threads: chosen.query.threads, rowsPerThread: chosen.query.rowsPerThread, keyThreads: chosen.query.keyThreads };
    const keyValue = { threads: chosen.keyValue.threads, rowsPerThread: chosen.keyValue.rowsPerThread, keyThreads: chosen.keyValue.keyThreads };
    if (!tiledBackwardFits('query', query, headDim, headDim, device.caps) || !tiledBackwardFits('keyValue', keyValue, headDim, headDim, device.caps)) continue;
    tuned.set(forwardTuningKey(dtype, headDim, headDim), { query, keyValue });
    applied++;
  }
  return applied;
}

