import { Adam, mseLoss } from '@webattn/nn';
import { onSdpaDispatch, type SdpaDispatchEvent } from '@webattn/sdpa';
import { randn, type Device } from '@webattn/tensor';
import {
  OPTION_SET_DEFINITIONS,
  type OptionSetName,
  type SeedConfig,
  type VariantName,
  buildSeedMasks,
  SeedModel,
} from '@webattn/seed-model';
import type { ProgressBar } from './progress-bar';

export interface SeedPhases {
  readonly forward: number;
  readonly backward: number;
  readonly optimizer: number;
  readonly readback: number;
}

export interface SeedResult {
  readonly variant: VariantName;
  readonly options: OptionSetName;
  /** Mean wall-clock ms per training step (forward, loss, backward, Adam), loss read back every step. */
  readonly msPerStep: number | null;
  /** msPerStep of the naive variant with the same options divided by this one's (> 1: faster than naive). */
  readonly speedupVsNaive: number | null;
  /** Backends the dispatch log recorded ("flash", "fwd math / bwd flash", "—" for no SDPA call). */
  readonly backend: string;
  readonly firstLoss: number | null;
  readonly lastLoss: number | null;
  /** GPU bytes held (buffer pool, in use) after the warm-up step and after the last step: equal when nothing leaks. */
  readonly inUseBytes?: { readonly afterWarmup: number; readonly afterLast: number };
  /** With --profile: ms per step in each phase, the GPU drained after each (so they add up to more than msPerStep). */
  readonly phases?: SeedPhases;
  /** Why this combination could not run (e.g. flash forced on the CPU device). */
  readonly error?: string;
}

/** Trains one (variant, option set) for one warm-up step plus config.steps timed steps. */
export async function runSeedCase(
  device: Device,
  config: SeedConfig,
  variant: VariantName,
  optionName: OptionSetName,
  onStep: (step: number) => void = () => {},
): Promise<Omit<SeedResult, 'speedupVsNaive'>> {
  const options = OPTION_SET_DEFINITIONS[optionName];
  const { batch: B, seq: L, embed: E, heads: H } = config;
  const masks = buildSeedMasks(device, config);
  const x = randn(device, [B, L, E], { seed: config.seed });
  const target = randn(device, [B, L, E], { seed: config.seed + 1 });
  const model = new SeedModel(device, variant, { embed: E, heads: H, dropout: options.dropout, seed: config.seed + 2 });
  const optimizer = new Adam(model.parameters(), { lr: 1e-3 });
  const events: SdpaDispatchEvent[] = [];
  const stop = onSdpaDispatch((event) => events.push(event));
  const losses: number[] = [];
  try {
    const phaseTotals = { forward: 0, backward: 0, optimizer: 0, readback: 0 };
    let timing = false;
    // With config.profile the GPU is drained after each phase, so each phase's time includes its GPU work.
    const mark = async (phase: keyof typeof phaseTotals, since: number) => {
      if (!config.profile) return since;
      await device.sync();
      const now = performance.now();
      if (timing) phaseTotals[phase] += now - since;
      return now;
    };
    const step = async () => {
      let t = performance.now();
      optimizer.zeroGrad();
      const prediction = model.forward(x, options, masks);
      const loss = mseLoss(prediction, target);
      prediction.dispose();
      t = await mark('forward', t);
      loss.backward();
      t = await mark('backward', t);
      optimizer.step();
      t = await mark('optimizer', t);
      losses.push((await loss.toArray())[0]!); // loss.item(): waits for the step to finish
      await mark('readback', t);
      loss.dispose();
    };
    const inUse = () => (device.isGpu ? device.pool.stats().inUseBytes : 0);
    await step(); // warm-up: pipelines compile, buffers enter the pool, optimizer state is created
    const afterWarmup = inUse();
    onStep(0);
    timing = true;
    const start = performance.now();
    for (let i = 0; i < config.steps; i++) {
      await step();
      onStep(i + 1);
    }
    const msPerStep = (performance.now() - start) / config.steps;
    const afterLast = inUse();
    return {
      variant,
      options: optionName,
      msPerStep,
      backend: summarizeBackends(events),
      firstLoss: losses[0]!,
      lastLoss: losses[losses.length - 1]!,
      ...(device.isGpu ? { inUseBytes: { afterWarmup, afterLast } } : {}),
      ...(config.profile
        ? {
            phases: {
              forward: phaseTotals.forward / config.steps,
              backward: phaseTotals.backward / config.steps,
              optimizer: phaseTotals.optimizer / config.steps,
              readback: phaseTotals.readback / config.steps,
            },
          }
        : {}),
    };
  } catch (error) {
    return {
      variant,
      options: optionName,
      msPerStep: null,
      backend: summarizeBackends(events),
      firstLoss: null,
      lastLoss: null,
      error: shortError(error),
    };
  } finally {
    stop();
    optimizer.zeroGrad();
    optimizer.dispose();
    model.dispose();
    masks.dispose();
    x.dispose();
    target.dispose();
    await device.sync().catch(() => {});
  }
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

/** Every (variant, option set) in order, with ratios to naive filled in. */
export async function runSeed(
  device: Device,
  config: SeedConfig,
  variants: readonly VariantName[],
  optionSets: readonly OptionSetName[],
  progress?: ProgressBar,
): Promise<SeedResult[]> {
  const results: Omit<SeedResult, 'speedupVsNaive'>[] = [];
  const total = variants.length * optionSets.length * (config.steps + 1);
  let done = 0;
  for (const optionName of optionSets) {
    for (const variant of variants) {
      const label = `${variant} / ${optionName}`;
      progress?.update(done, label);
      const result = await runSeedCase(device, config, variant, optionName, (step) =>
        progress?.update(done + step + 1, `${label} step ${step}/${config.steps}`),
      );
      done += config.steps + 1;
      progress?.finishItem(
        `${label}: ${result.msPerStep === null ? `failed (${result.error})` : `${result.msPerStep.toFixed(1)} ms/step`} [${result.backend}]`,
      );
      results.push(result);
    }
  }
  progress?.end();
  return results.map((result) => {
    const naive = results.find((r) => r.variant === 'naive' && r.options === result.options)?.msPerStep ?? null;
    return {
      ...result,
      speedupVsNaive: naive !== null && result.msPerStep !== null ? naive / result.msPerStep : null,
    };
  });
}

/** One line for a table cell: the flash rejection when a forced backend could not run, else the first line. */
export function shortError(error: unknown): string {
  const text = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  const lines = text.split('\n').map((line) => line.trim());
  const rejection = lines.find((line) => /^flash: /.test(line));
  return rejection ? `unavailable (${rejection})` : lines[0]!;
}
