/**
 * Node devices share one Dawn instance, held until the last device using it is destroyed and has reported its
 * loss: destroying one device never tears down the instance under another's pending work (device.ts, `sharedDawn`).
 */
import { describe, expect, it, vi } from 'vitest';
import { createDevice, dawnInstanceHolders } from './device';
import { openTestDevice } from './testing';

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
