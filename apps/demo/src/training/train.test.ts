/**
 * The mini-test's training loop on real WebGPU (Dawn in Node): the naive, sdpa and flash variants share their
 * parameters' initialisation, so without dropout they compute the same function and must follow the same loss
 * curve (up to float32 rounding); each loss must go down under Adam, and every step is timed.
 */
import { expectNoGpuErrors, openTestDevice } from '@webattn/tensor/testing';
import { afterAll, describe, expect, it } from 'vitest';
import type { OptionSetName, SeedConfig } from '@webattn/seed-model';
import { trainSeed, type TrainingCase } from './train';

const gpu = await openTestDevice();
const config: SeedConfig = { batch: 2, seq: 12, embed: 16, heads: 2, steps: 3, seed: 77 };

describe.skipIf(!gpu)('trainSeed on WebGPU', () => {
  afterAll(() => gpu?.destroy());

  it.each(['key-padding', 'causal'] as const)('%s: naive, sdpa and flash follow one loss curve, and it goes down', async (options: OptionSetName) => {
    const cases: TrainingCase[] = (['naive', 'sdpa', 'flash'] as const).map((variant) => ({ variant, options }));
    const steps: number[] = [];
    const results = await expectNoGpuErrors(gpu!, () => trainSeed(gpu!, config, cases, { onStep: (progress) => steps.push(progress.done) }));
    expect(steps).toEqual(Array.from({ length: cases.length * (config.steps + 1) }, (_, i) => i + 1));
    const [naive, sdpa, flash] = results;
    for (const result of results) {
      expect(result.error, `${result.variant}`).toBeNull();
      expect(result.msPerStep).toBeGreaterThan(0);
      expect(result.losses).toHaveLength(config.steps + 1);
      expect(result.losses.at(-1)!, `${result.variant} losses ${result.losses.join(', ')}`).toBeLessThan(result.losses[0]!);
    }
    expect(naive!.backend).toBe('—');
    expect(flash!.backend).toBe('flash');
    for (const other of [sdpa!, flash!]) {
      other.losses.forEach((loss, step) => expect(loss, `${other.variant} step ${step}`).toBeCloseTo(naive!.losses[step]!, 4));
    }
  });
});
