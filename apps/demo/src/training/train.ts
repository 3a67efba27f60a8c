/**
 * Trains the seed model once per (variant, option set): one untimed warm-up step (pipelines compile), then
 * `steps` timed steps of forward, MSE loss, backward and Adam, the loss read back every step (as loss.item()
 * would). Reports progress and every loss as it goes, so the page can draw while it runs.
 */
import type { Device } from '@webattn/tensor';
import { errorMessage } from '../dom';
import { seedTraining, type OptionSetName, type SeedConfig, type VariantName } from '@webattn/seed-model';

export interface TrainingCase {
  readonly variant: VariantName;
  readonly options: OptionSetName;
}

export interface TrainingResult extends TrainingCase {
  /** Mean wall-clock milliseconds per timed step, or null when the case failed. */
  readonly msPerStep: number | null;
  /** Losses of the warm-up step (index 0) and every timed step. */
  readonly losses: readonly number[];
  /** Backends the dispatch log recorded: "flash", "fwd math / bwd flash", or "—" (no SDPA call: naive). */
  readonly backend: string;
  /** Why the case could not run (e.g. flash forced on a device without WebGPU). */
  readonly error: string | null;
}

export interface TrainingProgress {
  readonly current: TrainingCase;
  /** Steps finished over all cases, and the total (each case: steps + 1 warm-up). */
  readonly done: number;
  readonly total: number;
  /** The step just finished in the current case (0 = warm-up) and its loss. */
  readonly step: number;
  readonly loss: number;
}

export interface TrainingCallbacks {
  /** A case is about to start (its first step is the untimed warm-up). */
  onCaseStart?(current: TrainingCase, index: number, count: number): void;
  onStep?(progress: TrainingProgress): void;
  onCaseDone?(result: TrainingResult): void;
  /** Polled between steps: true stops after the current step. */
  shouldStop?(): boolean;
}

class Stopped extends Error {}

async function trainCase(
  device: Device,
  config: SeedConfig,
  current: TrainingCase,
  report: (step: number, loss: number) => void,
  shouldStop: () => boolean,
): Promise<TrainingResult> {
  const training = seedTraining(device, config, current.variant, current.options);
  const losses: number[] = [];
  try {
    const step = async () => {
      const value = await training.step();
      losses.push(value);
      report(losses.length - 1, value);
    };
    await step();
    const start = performance.now();
    let timed = 0;
    for (; timed < config.steps; timed++) {
      if (shouldStop()) throw new Stopped('stopped');
      await step();
    }
    return { ...current, msPerStep: (performance.now() - start) / timed, losses, backend: training.backend(), error: null };
  } catch (error) {
    if (error instanceof Stopped) throw error;
    return { ...current, msPerStep: null, losses, backend: training.backend(), error: errorMessage(error) };
  } finally {
    await training.dispose();
  }
}

/** Runs every case in order (option set by option set, variant by variant). Stopping returns what finished. */
export async function trainSeed(
  device: Device,
  config: SeedConfig,
  cases: readonly TrainingCase[],
  callbacks: TrainingCallbacks = {},
): Promise<TrainingResult[]> {
  const results: TrainingResult[] = [];
  const total = cases.length * (config.steps + 1);
  let done = 0;
  for (const [index, current] of cases.entries()) {
    callbacks.onCaseStart?.(current, index, cases.length);
    try {
      const result = await trainCase(
        device,
        config,
        current,
        (step, loss) => callbacks.onStep?.({ current, done: ++done, total, step, loss }),
        () => callbacks.shouldStop?.() ?? false,
      );
      done = results.length * (config.steps + 1) + config.steps + 1;
      results.push(result);
      callbacks.onCaseDone?.(result);
    } catch (error) {
      if (error instanceof Stopped) break;
      throw error;
    }
  }
  return results;
}
