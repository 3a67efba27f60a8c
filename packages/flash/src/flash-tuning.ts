import { randn, type Device } from '@webattn/tensor';
import { flashAttention } from './flash-attention';
import { chooseTiles, forwardTilesFit, forwardTuningKey, headDimBucket, tunedForwardTilesOf, type ForwardTiles } from './flash-tiles';

/**
 * Autotuning of the forward kernel's workgroup shape: `tuneFlashForward(device)` times every candidate
 * (threads × query rows per thread × keys per tile) on a small problem per dtype and head-dim bucket and keeps
 * the fastest for that device; later flash forwards on the device use it (chooseTiles' default otherwise).
 * The choice lives as long as the device; benchmarks print it.
 */

/** One dtype and head-dim bucket's search: every candidate's time and the choice. */
export interface ForwardTuning {
  readonly dtype: 'f32' | 'f16';
  readonly headDim: number;
  readonly shape: readonly [number, number, number, number];
  readonly candidates: readonly { readonly tiles: ForwardTiles; readonly ms: number }[];
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
  /** Timed calls per candidate after one warm-up call. Default 3. */
  readonly iterations?: number;
  /** Candidates to time (default: forwardCandidates, every shape that fits). */
  readonly candidates?: readonly ForwardTiles[];
}

/** Every forward workgroup shape the kernel compiles that fits this device and head dim. */
export function forwardCandidates(device: Device, headDim: number): ForwardTiles[] {
  const candidates: ForwardTiles[] = [];
  const defaults = chooseTiles({ headDimQk: headDim, headDimV: headDim }, device.caps);
  const keyTiles = new Set([8, 16, 32, ...(defaults ? [defaults.forwardKeys] : [])]);
  for (const threads of [64, 128, 256]) {
    for (const rowsPerThread of [1, 2, 4]) {
      for (const keys of [...keyTiles].sort((a, b) => a - b)) {
        const tiles = { threads, rowsPerThread, keys };
        if (forwardTilesFit(tiles, headDim, headDim, device.caps)) candidates.push(tiles);
      }
    }
  }
  return candidates;
}

/** Times the forward candidates and keeps the fastest per dtype and head-dim bucket for this device. */
export async function tuneFlashForward(device: Device, options: TuneOptions = {}): Promise<ForwardTuning[]> {
  if (!device.isGpu) return [];
  const [batch, heads, length] = options.shape ?? [1, 8, 2048];
  const iterations = options.iterations ?? 3;
  const dtypes = options.dtypes ?? (device.caps.shaderF16 ? ['f32', 'f16'] : ['f32']);
  const tuned = tunedForwardTilesOf(device.gpu);
  const results: ForwardTuning[] = [];
  for (const dtype of dtypes) {
    for (const headDim of options.headDims ?? [64]) {
      const shape = [batch, heads, length, headDim] as const;
      const [q, k, v] = [1, 2, 3].map((seed) => randn(device, [...shape], { seed, dtype }));
      const key = forwardTuningKey(dtype, headDim, headDim);
      const candidates: { tiles: ForwardTiles; ms: number }[] = [];
      try {
        for (const tiles of options.candidates ?? forwardCandidates(device, headDim)) {
          tuned.set(key, tiles);
          const run = () => {
            const { out, logsumexp } = flashAttention(q!, k!, v!);
            out.dispose();
            logsumexp.dispose();
          };
          run();
          await device.sync();
          const start = performance.now();
          for (let i = 0; i < iterations; i++) run();
          await device.sync();
          candidates.push({ tiles, ms: (performance.now() - start) / iterations });
        }
      } finally {
        tuned.delete(key);
        for (const t of [q, k, v]) t!.dispose();
      }
      const problem = { headDimQk: headDim, headDimV: headDim };
      const defaults = chooseTiles(problem, device.caps)!;
      const defaultTiles = { threads: defaults.forwardThreads, rowsPerThread: defaults.forwardRowsPerThread, keys: defaults.forwardKeys };
      const best = candidates.reduce((a, b) => (b.ms < a.ms ? b : a));
      tuned.set(key, best.tiles);
      results.push({ dtype, headDim: headDimBucket(headDim), shape, candidates, defaultTiles, chosen: best.tiles });
    }
  }
  return results;
}

/** A tuning choice as saved by an app (e.g. JSON in localStorage): enough to restore it without re-timing. */
export type SavedForwardTuning = Pick<ForwardTuning, 'dtype' | 'headDim' | 'chosen'>;

/**
 * Restores choices `tuneFlashForward` made earlier (on the same adapter), so an app can save them once and skip
 * the search at later starts. Choices that do not fit this device are skipped; returns how many were applied.
 */
export function restoreFlashTuning(device: Device, saved: readonly SavedForwardTuning[]): number {
  if (!device.isGpu) return 0;
  const tuned = tunedForwardTilesOf(device.gpu);
  let applied = 0;
  for (const { dtype, headDim, chosen } of saved) {
    if (!forwardTilesFit(chosen, headDim, headDim, device.caps)) continue;
    tuned.set(forwardTuningKey(dtype, headDim, headDim), { threads: chosen.threads, rowsPerThread: chosen.rowsPerThread, keys: chosen.keys });
    applied++;
  }
  return applied;
}
