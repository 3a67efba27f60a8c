/**
 * The FinalizationRegistry safety net behind dispose(): a GPU tensor garbage-collected without dispose() gives
 * its storage back to the pool; a disposed one is not released twice; a view keeps the storage alive.
 * Garbage collection is forced with V8's gc (exposed at run time through node:v8).
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterAll, describe, expect, it } from 'vitest';
import { tensor, type Tensor } from './index';
import { expectNoGpuErrors, freshSeed, openTestDevice, randomValues } from './testing';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const gpu = await openTestDevice();
afterAll(() => gpu?.destroy());

/** Collects until `done()` holds (finalizers run in later tasks), at most `rounds` times. */
async function collectUntil(done: () => boolean, rounds = 50): Promise<boolean> {
  for (let i = 0; i < rounds && !done(); i++) {
    gc();
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return done();
}

describe.skipIf(!gpu)('FinalizationRegistry safety net', () => {
  const device = gpu!;
  const seed = freshSeed();

  it('tensors dropped without dispose() return their buffers to the pool once collected', async () => {
    await expectNoGpuErrors(device, async () => {
      await device.sync();
      const baseline = device.pool.stats().inUseBytes;
      (() => {
        for (let i = 0; i < 40; i++) tensor(device, randomValues(1000, seed + i), [10, 100]);
      })();
      expect(device.pool.stats().inUseBytes).toBeGreaterThan(baseline);
      const returned = await collectUntil(() => device.pool.stats().inUseBytes <= baseline);
      expect(returned, `in use: ${device.pool.stats().inUseBytes} bytes, baseline ${baseline}`).toBe(true);
    });
  });

  it('a view keeps the storage alive after its parent is collected; dispose() is not undone by collection', async () => {
    await expectNoGpuErrors(device, async () => {
      await device.sync();
      const baseline = device.pool.stats().inUseBytes;
      const values = randomValues(24, seed);
      let view: Tensor | null = (() => {
        const parent = tensor(device, values, [4, 6]);
        const disposedParent = tensor(device, values, [4, 6]);
        disposedParent.dispose();
        return [parent.transpose(0, 1), disposedParent][0]!;
      })();
      let viewOfDisposed: Tensor | null = (() => {
        const parent = tensor(device, values, [4, 6]);
        const child = parent.transpose(0, 1);
        parent.dispose();
        return child;
      })();
      await collectUntil(() => false, 5);
      await device.sync();
      // Both parents were collected (one disposed before): the views still hold their storage. Had a parent's
      // reference been released twice, its buffer would be back in the pool and overwritten here.
      const others = Array.from({ length: 8 }, (_, i) => tensor(device, randomValues(24, seed + 1 + i), [4, 6]));
      expect(await viewOfDisposed.transpose(0, 1).toArray()).toEqual(values);
      viewOfDisposed.dispose();
      viewOfDisposed = null;
      others.forEach((t) => t.dispose());
      const other = tensor(device, randomValues(24, seed + 1), [4, 6]);
      const read = await view.transpose(0, 1).toArray();
      expect(read).toEqual(values);
      other.dispose();
      view.dispose();
      view = null;
      expect(await collectUntil(() => device.pool.stats().inUseBytes <= baseline)).toBe(true);
    });
  });
});
