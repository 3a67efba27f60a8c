import { bestTimingMethod, createCallSampler, median, randn, type CallSampler, type Device, type Tensor, type TimingMethod } from '@webattn/tensor';
import { flashAttention, flashGradients } from './flash-attention';
import { defaultMatrixKeyValueShape, matrixKeyValueFits } from './flash-backward-key-value-matrix';
import { defaultMatrixQueryShape, matrixQueryFits } from './flash-backward-query-matrix';
import {
  FORWARD_ROWS_PER_THREAD,
  MATRIX_BACKWARD_SUBGROUPS,
  MATRIX_BACKWARD_TILES,
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
  type FlashCaps,
  type ForwardTiles,
  type MatrixBackwardShapes,
  type MatrixKeyValueShape,
  type MatrixQueryShape,
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
  /** Every candidate's unmasked and causal time per call (ms). */
  readonly candidates: readonly ({ readonly tiles: ForwardTiles } & CandidateTimes)[];
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
  /**
   * Also time each candidate with a causal mask, and keep the fastest of the shapes whose causal calls hold
   * CAUSAL_FRACTION_FLOOR of their unmasked speed (fastestKeepingCausal). Default true; false halves the search.
   */
  readonly causal?: boolean;
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

/** A candidate's time per call (ms) on the timed problem, unmasked and with a causal mask (null: not timed causal). */
export interface CandidateTimes {
  readonly ms: number;
  readonly causalMs: number | null;
}

/** The mask line flash holds: a causal call (half the FLOPs) keeps at least this fraction of the unmasked TFLOP/s. */
export const CAUSAL_FRACTION_FLOOR = 0.85;

/** A causal call's TFLOP/s as a fraction of the unmasked call's (it counts half the FLOPs); null where not timed. */
export const causalFraction = (times: CandidateTimes): number | null => (times.causalMs === null ? null : times.ms / 2 / times.causalMs);

/**
 * The candidate a search keeps: the fastest unmasked one of those whose causal calls keep CAUSAL_FRACTION_FLOOR of its
 * speed, else (none does) the fastest unmasked. A shape that is fast unmasked but spends its time on the masked half of
 * a causal triangle (large row blocks at short sequences: bench notes, entry 31) is not taken over one that keeps both.
 */
export function fastestKeepingCausal<T extends CandidateTimes>(candidates: readonly T[]): T {
  const fastest = (list: readonly T[]) => list.reduce((a, b) => (b.ms < a.ms ? b : a));
  const keeping = candidates.filter((candidate) => (causalFraction(candidate) ?? 1) >= CAUSAL_FRACTION_FLOOR);
  return fastest(keeping.length > 0 ? keeping : candidates);
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

/** A call's time: one call that compiles its pipelines, then the median of three samples of `iterations` calls. */
async function timeCall(sampler: CallSampler, call: () => Tensor[], iterations: number): Promise<number> {
  await sampler.sample(call, 1);
  const samples: number[] = [];
  for (let sample = 0; sample < 3; sample++) samples.push(await sampler.sample(call, iterations));
  return median(samples);
}

/** A candidate's unmasked (`calls.none`) and causal (`calls.causal`, where given) times. */
async function timeCandidate(sampler: CallSampler, calls: TimedCalls, iterations: number): Promise<CandidateTimes> {
  const ms = await timeCall(sampler, calls.none, iterations);
  return { ms, causalMs: calls.causal ? await timeCall(sampler, calls.causal, iterations) : null };
}

/** The calls a search times per candidate: the timed problem unmasked and (TuneOptions.causal) with a causal mask. */
interface TimedCalls {
  readonly none: () => Tensor[];
  readonly causal: (() => Tensor[]) | null;
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
        const forward = (isCausal: boolean) => () => {
          const { out, logsumexp } = flashAttention(q, k, v, { isCausal });
          return [out, logsumexp];
        };
        const calls = { none: forward(false), causal: options.causal === false ? null : forward(true) };
        const candidates: ({ tiles: ForwardTiles } & CandidateTimes)[] = [];
        try {
          await warmUp(sampler, calls.none);
          for (const tiles of options.candidates ?? forwardCandidates(device, headDim, dtype)) {
            tuned.set(key, tiles);
            candidates.push({ tiles, ...(await timeCandidate(sampler, calls, iterations)) });
          }
        } finally {
          tuned.delete(key);
          for (const t of [q, k, v]) t.dispose();
        }
        const problem = { dtype, headDimQk: headDim, headDimV: headDim, directKeyValues: true };
        const defaultTiles = chooseTiles(problem, device.caps)!.forward;
        const best = fastestKeepingCausal(candidates);
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

/** One kernel family's backward search over its dQ ('query') and dK/dV ('keyValue') shapes. */
interface BackwardSearch<Shapes extends { readonly query: object; readonly keyValue: object }> {
  readonly dtype: 'f32' | 'f16';
  readonly headDim: number;
  readonly shape: readonly [number, number, number, number];
  /** dQ's shapes timed with dK/dV at its default, then dK/dV's with dQ at its choice (ms per backward call). */
  readonly candidates: { readonly [K in keyof Shapes]: readonly ({ readonly shape: Shapes[K] } & CandidateTimes)[] };
  readonly method: TimingMethod;
  readonly defaultShapes: Shapes;
  readonly chosen: Shapes;
}

/**
 * One dtype and head-dim bucket's backward search: every candidate's backward time, the defaults and the choice, for
 * the tiled kernels (`kernel` 'tiled', after a tiled forward) or the subgroup-matrix ones ('matrix', f16 after the
 * matrix forward's direct form).
 */
export type BackwardTuning = ({ readonly kernel: 'tiled' } & BackwardSearch<BackwardShapes>) | ({ readonly kernel: 'matrix' } & BackwardSearch<MatrixBackwardShapes>);

export interface BackwardTuneOptions extends Omit<TuneOptions, 'candidates'> {
  /** Tiled shapes to time per kernel (default: backwardCandidates; the default shape is always timed too). */
  readonly candidates?: { readonly [K in TiledBackwardKernel]?: readonly TiledShape[] };
  /** Matrix shapes to time per kernel (default: matrixBackwardCandidates; the default shape is always timed too). */
  readonly matrixCandidates?: { readonly query?: readonly MatrixQueryShape[]; readonly keyValue?: readonly MatrixKeyValueShape[] };
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

/** Every matrix dQ and dK/dV shape (subgroups × keys or query rows per tile) that fits this device at this head dim. */
export function matrixBackwardCandidates(device: Device, headDim: number): { query: MatrixQueryShape[]; keyValue: MatrixKeyValueShape[] } {
  const bucket = headDimBucket(headDim);
  const query: MatrixQueryShape[] = [];
  const keyValue: MatrixKeyValueShape[] = [];
  for (const subgroups of MATRIX_BACKWARD_SUBGROUPS) {
    for (const tile of MATRIX_BACKWARD_TILES) {
      if (matrixQueryFits({ subgroups, keys: tile }, bucket, bucket, device.caps)) query.push({ subgroups, keys: tile });
      if (matrixKeyValueFits({ subgroups, rows: tile }, bucket, bucket, device.caps)) keyValue.push({ subgroups, rows: tile });
    }
  }
  return { query, keyValue };
}

/** Whether two shapes have the same fields. */
const sameShape = (a: object, b: object) => JSON.stringify(Object.entries(a).sort()) === JSON.stringify(Object.entries(b).sort());

/**
 * Times one family's backward with every listed dQ shape (dK/dV at its default), then every dK/dV shape (dQ at its
 * choice: fastestKeepingCausal), the default shapes always among them; `use` makes a pair of shapes the device's choice (what the timed
 * calls run), `fits` says whether a shape runs as itself (others are not timed).
 */
async function searchBackwardShapes<Shapes extends { readonly query: object; readonly keyValue: object }>(
  sampler: CallSampler,
  calls: { readonly query: TimedCalls; readonly keyValue: TimedCalls },
  iterations: number,
  search: {
    readonly defaults: Shapes;
    readonly listed: { readonly [K in keyof Shapes]: readonly Shapes[K][] };
    readonly fits: (kernel: keyof Shapes, shape: object) => boolean;
    readonly use: (shapes: Shapes) => void;
  },
): Promise<{ candidates: { [K in keyof Shapes]: ({ shape: Shapes[K] } & CandidateTimes)[] }; chosen: Shapes }> {
  const { defaults, listed, fits, use } = search;
  const candidates = { query: [], keyValue: [] } as unknown as { [K in keyof Shapes]: ({ shape: Shapes[K] } & CandidateTimes)[] };
  const chosen: { -readonly [K in keyof Shapes]: Shapes[K] } = { ...defaults };
  for (const kernel of ['query', 'keyValue'] as const) {
    await warmUp(sampler, calls[kernel].none);
    const shapes = listed[kernel].some((shape) => sameShape(shape, defaults[kernel])) ? listed[kernel] : [defaults[kernel], ...listed[kernel]];
    for (const shape of shapes) {
      if (!fits(kernel, shape)) continue;
      use({ ...chosen, [kernel]: shape });
      candidates[kernel].push({ shape, ...(await timeCandidate(sampler, calls[kernel], iterations)) });
    }
    chosen[kernel] = fastestKeepingCausal(candidates[kernel]).shape;
  }
  use(chosen);
  return { candidates, chosen };
}

/**
 * Autotuning of the backward's workgroup shapes per device, dtype and head-dim bucket, for the family its forward
 * (tuned or not) takes: after a tiled forward the tiled dQ and dK/dV (chooseTiles' `tiledQuery` and
 * `tiledKeyValue`, a table measured on an H200 by default), after the f16 matrix forward's direct form the matrix
 * dQ and dK/dV (matrixQueryShape, matrixKeyValueShape: defaults measured on an H200). It times the backward,
 * unmasked and causal, with every dQ shape (dK/dV at its default; with no stored scores, as the problems whose
 * scores do not fit run it), then with every dK/dV shape (dQ at its choice), and
 * keeps for the device the fastest of each that holds the mask line (fastestKeepingCausal); later backwards use them.
 * After a compact forward nothing is tuned and no result is returned. Timing as in tuneFlashForward.
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
        const bucket = headDimBucket(headDim);
        const tiledDefaults = defaults?.forward.kernel === 'tiled' && defaults.tiledQuery && defaults.tiledKeyValue ? { query: defaults.tiledQuery, keyValue: defaults.tiledKeyValue } : null;
        const matrixQuery = defaults?.forward.kernel === 'matrix' && defaults.directKeyValues ? defaultMatrixQueryShape(bucket, bucket, device.caps) : null;
        const matrixKeyValue = matrixQuery && defaultMatrixKeyValueShape(bucket, bucket, device.caps);
        if (!tiledDefaults && !(matrixQuery && matrixKeyValue)) {
          if (previous) tuned.set(key, previous);
          continue;
        }
        const shape = [batch, heads, length, headDim] as const;
        const [q, k, v, gradOut] = [1, 2, 3, 4].map((seed) => randn(device, [...shape], { seed, dtype })) as [Tensor, Tensor, Tensor, Tensor];
        // The forwards the timed backwards follow, unmasked and causal.
        const forwards = (options.causal === false ? [false] : [false, true]).map((isCausal) => ({ isCausal, ...flashAttention(q, k, v, { isCausal }) }));
        const backward = (caps: FlashCaps) => ({ isCausal, out, logsumexp }: (typeof forwards)[number]) => () => {
          const { dq, dk, dv } = flashGradients({ q, k, v, out, logsumexp, gradOut }, { isCausal }, caps);
          return [dq, dk, dv];
        };
        const timed = (caps: FlashCaps): TimedCalls => ({ none: backward(caps)(forwards[0]!), causal: forwards[1] ? backward(caps)(forwards[1]) : null });
        // The dQ shapes (tiled or matrix) shape the kernel that recomputes the scores, which problems too large to
        // store them take (stored-scores.ts, matrix-stored-scores.ts): timed with none stored. dK/dV as it runs,
        // storing them where they fit.
        const calls = { query: timed({ ...device.caps, storedScoresBytes: 0 }), keyValue: timed(device.caps) };
        const found = { dtype, headDim: bucket, shape, method: sampler.method };
        try {
          if (tiledDefaults) {
            const listed = { query: options.candidates?.query ?? backwardCandidates(device, 'query', headDim), keyValue: options.candidates?.keyValue ?? backwardCandidates(device, 'keyValue', headDim) };
            const fits = (kernel: keyof BackwardShapes, shape: object) => tiledBackwardFits(kernel, shape as TiledShape, headDim, headDim, device.caps);
            const use = (shapes: BackwardShapes) => tuned.set(key, { query: shapes.query, keyValue: shapes.keyValue });
            const { candidates, chosen } = await searchBackwardShapes<BackwardShapes>(sampler, calls, iterations, { defaults: tiledDefaults, listed, fits, use });
            results.push({ kernel: 'tiled', ...found, candidates, defaultShapes: tiledDefaults, chosen });
          } else {
            const matrixDefaults = { query: matrixQuery!, keyValue: matrixKeyValue! };
            const all = matrixBackwardCandidates(device, headDim);
            const listed = { query: options.matrixCandidates?.query ?? all.query, keyValue: options.matrixCandidates?.keyValue ?? all.keyValue };
            const fits = (kernel: keyof MatrixBackwardShapes, shape: object) =>
              kernel === 'query' ? matrixQueryFits(shape as MatrixQueryShape, bucket, bucket, device.caps) : matrixKeyValueFits(shape as MatrixKeyValueShape, bucket, bucket, device.caps);
            const use = (shapes: MatrixBackwardShapes) => tuned.set(key, { matrixQuery: shapes.query, matrixKeyValue: shapes.keyValue });
            const { candidates, chosen } = await searchBackwardShapes<MatrixBackwardShapes>(sampler, calls, iterations, { defaults: matrixDefaults, listed, fits, use });
            results.push({ kernel: 'matrix', ...found, candidates, defaultShapes: matrixDefaults, chosen });
          }
        } catch (error) {
          if (previous) tuned.set(key, previous);
          else tuned.delete(key);
          throw error;
        } finally {
          for (const t of [q, k, v, gradOut, ...forwards.flatMap(({ out, logsumexp }) => [out, logsumexp])]) t.dispose();
        }
      }
    }
  } finally {
    sampler.destroy();
  }
  return results;
}

/**
 * A backward tuning choice as saved by an app (BackwardTuning's kernel, dtype, headDim and chosen; choices saved
 * before the matrix backward was tuned have no `kernel`: they are tiled shapes).
 */
export type SavedBackwardTuning =
  | { readonly kernel?: 'tiled'; readonly dtype: BackwardTuning['dtype']; readonly headDim: number; readonly chosen: BackwardShapes }
  | { readonly kernel: 'matrix'; readonly dtype: BackwardTuning['dtype']; readonly headDim: number; readonly chosen: MatrixBackwardShapes };

/**
 * Restores choices `tuneFlashBackward` made earlier (on the same adapter). Choices whose shapes do not fit this
 * device are skipped, and matrix shapes for f32 (the matrix kernels are f16 only); returns how many were applied.
 */
export function restoreFlashBackwardTuning(device: Device, saved: readonly SavedBackwardTuning[]): number {
  if (!device.isGpu) return 0;
  const tuned = tunedBackwardShapesOf(device.gpu);
  let applied = 0;
  for (const choice of saved) {
    const { dtype, headDim } = choice;
    const key = forwardTuningKey(dtype, headDim, headDim);
    if (choice.kernel === 'matrix') {
      const bucket = headDimBucket(headDim);
      const matrixQuery = { subgroups: choice.chosen.query.subgroups, keys: choice.chosen.query.keys };
      const matrixKeyValue = { subgroups: choice.chosen.keyValue.subgroups, rows: choice.chosen.keyValue.rows };
      if (dtype !== 'f16' || !matrixQueryFits(matrixQuery, bucket, bucket, device.caps) || !matrixKeyValueFits(matrixKeyValue, bucket, bucket, device.caps)) continue;
      tuned.set(key, { ...tuned.get(key), matrixQuery, matrixKeyValue });
    } else {
      const { chosen } = choice;
      const query = { threads: chosen.query.threads, rowsPerThread: chosen.query.rowsPerThread, keyThreads: chosen.query.keyThreads };
      const keyValue = { threads: chosen.keyValue.threads, rowsPerThread: chosen.keyValue.rowsPerThread, keyThreads: chosen.keyValue.keyThreads };
      if (!tiledBackwardFits('query', query, headDim, headDim, device.caps) || !tiledBackwardFits('keyValue', keyValue, headDim, headDim, device.caps)) continue;
      tuned.set(key, { ...tuned.get(key), query, keyValue });
    }
    applied++;
  }
  return applied;
}
