import type { Device } from '@webattn/tensor';
import { seedTraining, type OptionSetName, type SeedConfig, type SeedPhase, type VariantName } from '@webattn/seed-model';
import type { ProgressBar } from './progress-bar';

/** Mean ms per step in each phase. */
export type SeedPhases = Readonly<Record<SeedPhase, number>>;

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
  const training = seedTraining(device, config, variant, optionName);
  const losses: number[] = [];
  try {
    const phaseTotals: Record<SeedPhase, number> = { forward: 0, backward: 0, optimizer: 0, readback: 0 };
    let timing = false;
    let since = 0;
    // With config.profile the GPU is drained after each phase, so each phase's time includes its GPU work.
    const mark = config.profile
      ? async (phase: SeedPhase) => {
          await device.sync();
          const now = performance.now();
          if (timing) phaseTotals[phase] += now - since;
          since = now;
        }
      : undefined;
    const step = async () => {
      since = performance.now();
      losses.push(await training.step(mark)); // loss.item(): waits for the step to finish
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
      backend: training.backend(),
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
      backend: training.backend(),
      firstLoss: null,
      lastLoss: null,
      error: shortError(error),
    };
  } finally {
    await training.dispose();
  }
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
