/**
 * Node devices share one Dawn instance, held until the last device using it is destroyed and has reported its
 * loss: destroying one device never tears down the instance under another's pending work (device.ts, `sharedDawn`).
 */
import { describe, expect, it, vi } from 'vitest';
import { createDevice, dawnInstanceHolders, type Device } from './device';
import { createCallSampler } from './gpu-timing';
import { matmul } from './ops/matmul';
import { randn } from './creation';
import { freshSeed, openTestDevice } from './testing';

const probe = await openTestDevice();

describe.skipIf(!probe || typeof process === 'undefined')('the shared Dawn instance', () => {
  it('is held by every Node device and let go by each once it is destroyed (twice is harmless); the last one drops it', async () => {
    const [held] = dawnInstanceHolders();
    expect(held).toBeGreaterThanOrEqual(1);
    const first = await createDevice({ requireGpu: true });
    const second = await createDevice({ requireGpu: true });
    expect(dawnInstanceHolders()).toEqual([held! + 2]);
    first.destroy();
    first.destroy();
    await vi.waitFor(() => expect(dawnInstanceHolders()).toEqual([held! + 1]));
    // The other device still works on the shared instance.
    await expect(second.sync()).resolves.toBeUndefined();
    second.destroy();
    probe!.destroy();
    await vi.waitFor(() => expect(dawnInstanceHolders()).toEqual(held === 1 ? [] : [held! - 1]));
  });
});

/** Whether every GPU timestamp of a few timed 256×256 products came back a multiple of Dawn's 65.536 µs quantum. */
async function timestampsQuantized(device: Device): Promise<boolean> {
  const seed = freshSeed();
  const [a, b] = [randn(device, [256, 256], { seed }), randn(device, [256, 256], { seed: seed + 1 })];
  const sampler = createCallSampler(device, 'timestamp');
  try {
    for (let sample = 0; sample < 3; sample++) await sampler.sample(() => [matmul(a, b)], 2);
    return sampler.quantized;
  } finally {
    sampler.destroy();
    a.dispose();
    b.dispose();
  }
}

describe.skipIf(!probe?.caps.timestampQuery || typeof process === 'undefined')('GPU timestamps in Node', () => {
  it("keep the device's resolution (Dawn's timestamp_quantization off), and come in 65.536 µs steps with Dawn's defaults", async () => {
    const precise = await createDevice({ requireGpu: true });
    const dawnDefaults = await createDevice({ requireGpu: true, disabledDawnFeatures: [] });
    try {
      expect(await timestampsQuantized(precise)).toBe(false);
      expect(await timestampsQuantized(dawnDefaults)).toBe(true);
    } finally {
      precise.destroy();
      dawnDefaults.destroy();
    }
  });
});
