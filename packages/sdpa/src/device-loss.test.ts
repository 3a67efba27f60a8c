/**
 * Device loss, simulated with device.destroy() in the middle of work: readbacks already pending and every later
 * call reject with DeviceLostError (nothing hangs), and a new createDevice() works.
 */
import { attentionReference } from '@webattn/reference';
import { DeviceLostError, createDevice, tensor, type Device, type Tensor } from '@webattn/tensor';
import { freshSeed, maxAbsDiff, openTestDevice, randomValues } from '@webattn/tensor/testing';
import { afterAll, describe, expect, it } from 'vitest';
import { scaledDotProductAttention } from './sdpa';

const probe = await openTestDevice();
afterAll(() => probe?.destroy());

const seed = freshSeed();
const shape = [1, 2, 7, 8];
const values = [0, 1, 2].map((i) => randomValues(112, seed + i));
const opened: Device[] = [];
afterAll(() => opened.forEach((device) => device.destroy()));

async function open(): Promise<Device> {
  const device = await createDevice({ requireGpu: true });
  opened.push(device);
  return device;
}

const inputs = (device: Device) => values.map((data) => tensor(device, data, shape)) as [Tensor, Tensor, Tensor];

/** Settles within `ms` or fails: a hang is a failure, not a timeout of the whole file. */
function settled<T>(promise: Promise<T>, ms = 10_000): Promise<{ value?: T; error?: unknown }> {
  return Promise.race([
    promise.then(
      (value) => ({ value }),
      (error: unknown) => ({ error }),
    ),
    new Promise<{ error: unknown }>((resolve) => setTimeout(() => resolve({ error: new Error(`still pending after ${ms} ms`) }), ms)),
  ]);
}

describe.skipIf(!probe)('device loss', () => {
  for (const backend of ['flash', 'math'] as const) {
    it(`${backend}: pending and later calls reject with DeviceLostError; a new device works`, async () => {
      const device = await open();
      const [q, k, v] = inputs(device);
      // Work in flight: several recorded calls with readbacks pending, then the device goes away.
      const outs = Array.from({ length: 4 }, (_, i) => scaledDotProductAttention(q, k, v, { backends: [backend], isCausal: i % 2 === 0 }));
      const pending: Promise<unknown>[] = [...outs.map((out) => out.toArray()), device.sync()];
      device.destroy();
      const results = await Promise.all(pending.map((promise) => settled(promise)));
      for (const [i, result] of results.entries()) {
        expect(result.error, `pending call ${i}`).toBeInstanceOf(DeviceLostError);
        expect((result.error as Error).message).toMatch(/was lost: destroyed by device.destroy\(\).*createDevice\(\)/);
      }
      // Later calls: the dispatcher, tensor creation, readback, sync.
      expect(() => scaledDotProductAttention(q, k, v, { backends: [backend] })).toThrow(DeviceLostError);
      expect(() => scaledDotProductAttention(q, k, v)).toThrow(DeviceLostError);
      expect(() => tensor(device, values[0]!, shape)).toThrow(DeviceLostError);
      expect((await settled(q.toArray())).error).toBeInstanceOf(DeviceLostError);
      expect((await settled(device.sync())).error).toBeInstanceOf(DeviceLostError);
      // Disposing tensors of a lost device is harmless.
      [q, k, v, ...outs].forEach((t) => t.dispose());

      const fresh = await open();
      const [q2, k2, v2] = inputs(fresh);
      const out = scaledDotProductAttention(q2, k2, v2, { backends: [backend], isCausal: true });
      const expected = attentionReference(
        { data: values[0]!, shape },
        { data: values[1]!, shape },
        { data: values[2]!, shape },
        { isCausal: true },
      );
      expect(maxAbsDiff(await out.toArray(), expected.out).value, `seed ${seed}`).toBeLessThan(1e-5);
      [q2, k2, v2, out].forEach((t) => t.dispose());
      fresh.destroy();
    });
  }

  it('a device lost while a backward pass is recorded rejects its readback', async () => {
    const device = await open();
    const [q, k, v] = values.map((data) => tensor(device, data, shape, { requiresGrad: true })) as [Tensor, Tensor, Tensor];
    const out = scaledDotProductAttention(q, k, v, { backends: ['math'] });
    out.backward(tensor(device, values[2]!, shape));
    const pending = q.grad!.toArray();
    device.destroy();
    expect((await settled(pending)).error).toBeInstanceOf(DeviceLostError);
  });
});
