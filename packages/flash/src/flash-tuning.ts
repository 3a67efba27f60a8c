import { bestTimingMethod, createCallSampler, median, randn, type Device, type Tensor, type TimingMethod } from '@webattn/tensor';
import { flashAttention } from './flash-attention';
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
  tunedForwardTilesOf,
  type ForwardTiles,
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

/** Times the forward candidates and keeps the fastest per dtype and head-dim bucket for this device. */
export async function tuneFlashForward(device: Device, options: TuneOptions = {}): Promise<ForwardTuning[]> {
  if (!device.isGpu) return [];
  const [batch, heads, length] = options.shape ?? [1, 8, 2048];
  const iterations = options.iterations ?? 8;
  const dtypes = options.dtypes ?? (device.caps.shaderF16 ? ['f32', 'f16'] : ['f32']);
  const tuned = tunedForwardTilesOf(device.gpu);
  const sampler = createCallSampler(device, bestTimingMethod(device));
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
          // A GPU that idled (e.g. while the host drew inputs) clocks down and the first candidates would read slow:
          // keep it busy for WARM_UP_MS first (bench notes, entry 14).
          for (let spent = 0, calls = 0; spent < WARM_UP_MS && calls < 256; calls += 4) spent += (await sampler.sample(call, 4)) * 4;
          for (const tiles of options.candidates ?? forwardCandidates(device, headDim, dtype)) {
            tuned.set(key, tiles);
            // The first call compiles the candidate's pipeline.
            await sampler.sample(call, 1);
            const samples: number[] = [];
            for (let sample = 0; sample < 3; sample++) samples.push(await sampler.sample(call, iterations));
            candidates.push({ tiles, ms: median(samples) });
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
