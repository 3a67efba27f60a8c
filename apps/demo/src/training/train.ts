/**
 * Trains the seed model once per (variant, option set): one untimed warm-up step (pipelines compile), then
 * `steps` timed steps of forward, MSE loss, backward and Adam, the loss read back every step (as loss.item()
 * would). Reports progress and every loss as it goes, so the page can draw while it runs.
 */
import { Adam, mseLoss } from '@webattn/nn';
import { onSdpaDispatch, type SdpaDispatchEvent } from '@webattn/sdpa';
import { randn, type Device } from '@webattn/tensor';
import { errorMessage } from '../dom';
import {
  OPTION_SET_DEFINITIONS,
  type OptionSetName,
  type SeedConfig,
  type VariantName,
  buildSeedMasks,
  SeedModel,
} from '@webattn/seed-model';

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

/** "flash" when every call ran on one backend, else "fwd A / bwd B"; "—" when no SDPA call happened. */
export function summarizeBackends(events: readonly SdpaDispatchEvent[]): string {
  if (events.length === 0) return '—';
  const of = (phase: 'forward' | 'backward') => [...new Set(events.filter((e) => e.phase === phase).map((e) => e.backend))].join('+');
  const forward = of('forward');
  const backward = of('backward');
  if (!backward || forward === backward) return forward || backward;
  return `fwd ${forward} / bwd ${backward}`;
}

class Stopped extends Error {}

async function trainCase(
  device: Device,
  config: SeedConfig,
  current: TrainingCase,
  report: (step: number, loss: number) => void,
  shouldStop: () => boolean,
): Promise<TrainingResult> {
  const options = OPTION_SET_DEFINITIONS[current.options];
  const { batch: B, seq: L, embed: E, heads: H } = config;
  const masks = buildSeedMasks(device, config);
  const x = randn(device, [B, L, E], { seed: config.seed });
  const target = randn(device, [B, L, E], { seed: config.seed + 1 });
  const model = new SeedModel(device, current.variant, { embed: E, heads: H, dropout: options.dropout, seed: config.seed + 2 });
  const optimizer = new Adam(model.parameters(), { lr: 1e-3 });
  const events: SdpaDispatchEvent[] = [];
  const stop = onSdpaDispatch((event) => events.push(event));
  const losses: number[] = [];
  try {
    const step = async () => {
      optimizer.zeroGrad();
      const prediction = model.forward(x, options, masks);
      const loss = mseLoss(prediction, target);
      prediction.dispose();
      loss.backward();
      optimizer.step();
      const value = (await loss.toArray())[0]!;
      loss.dispose();
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
    return { ...current, msPerStep: (performance.now() - start) / timed, losses, backend: summarizeBackends(events), error: null };
  } catch (error) {
    if (error instanceof Stopped) throw error;
    return { ...current, msPerStep: null, losses, backend: summarizeBackends(events), error: errorMessage(error) };
  } finally {
    stop();
    optimizer.zeroGrad();
    model.dispose();
    masks.dispose();
    x.dispose();
    target.dispose();
    await device.sync().catch(() => undefined);
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
