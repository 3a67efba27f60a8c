/**
 * The call samplers behind flash's autotuner and the benchmarks: both methods time real GPU work, more work takes
 * longer, outputs are disposed, and the timestamp sampler is chosen where the device has 'timestamp-query'.
 */
import { afterAll, describe, expect, it, vi, type MockInstance } from 'vitest';
import { bestTimingMethod, createCallSampler, matmul, median, randn, type CallSampler, type Tensor, type TimingMethod } from './index';
import { expectNoGpuErrors, freshSeed, openTestDevice } from './testing';

const gpu = await openTestDevice();
afterAll(() => gpu?.destroy());

describe('median', () => {
  it('takes the middle value, or the mean of the middle two', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(() => median([])).toThrow(RangeError);
  });
});

/**
 * Runs `body` with a fresh timestamp sampler, two random n×n matrices and a spy on the queue's submits (cleared once
 * the device is idle), then cleans up. Skipped where the device has no timestamp queries.
 */
async function withTimestampSampler(n: number, body: (run: { sampler: CallSampler; a: Tensor; b: Tensor; submit: MockInstance }) => Promise<void>) {
  const device = gpu!;
  if (!device.caps.timestampQuery) return;
  const seed = freshSeed();
  const [a, b] = [randn(device, [n, n], { seed }), randn(device, [n, n], { seed: seed + 1 })];
  const submit = vi.spyOn(device.gpu.queue, 'submit');
  const sampler = createCallSampler(device, 'timestamp');
  try {
    await device.sync();
    submit.mockClear();
    await body({ sampler, a, b, submit });
    await device.sync();
  } finally {
    submit.mockRestore();
    sampler.destroy();
    a.dispose();
    b.dispose();
  }
}

describe.skipIf(!gpu)('call samplers', () => {
  it('picks GPU timestamps where the device has them', () => {
    expect(bestTimingMethod(gpu!)).toBe(gpu!.caps.timestampQuery ? 'timestamp' : 'wall-clock');
  });

  it('timestamp: a sample reaches the GPU in one submit however many dispatches its calls record (no host time between them)', async () => {
    await withTimestampSampler(64, async ({ sampler, a, b, submit }) => {
      // 150 products: more than twice the dispatches after which the device submits on its own.
      const call = () => Array.from({ length: 150 }, () => matmul(a, b));
      expect(await sampler.sample(call, 1)).toBeGreaterThan(0);
      expect(submit).toHaveBeenCalledTimes(1);
      // Outside a sample the device still submits every so many dispatches.
      submit.mockClear();
      for (const product of call()) product.dispose();
      expect(submit.mock.calls.length).toBeGreaterThanOrEqual(2);
    });
  });

  it('timestamp: from the second sample on a heater run, about as long as the last recording, goes first; the time is the calls\' alone', async () => {
    await withTimestampSampler(32, async ({ sampler, a, b, submit }) => {
      // A call whose recording takes the host 30 ms (the GPU's share is one small product).
      const slowToRecord = () => {
        const until = performance.now() + 30;
        while (performance.now() < until);
        return [matmul(a, b)];
      };
      await sampler.sample(slowToRecord, 1);
      // The first sample knows no recording time yet: no heater.
      expect(submit).toHaveBeenCalledTimes(1);
      submit.mockClear();
      const ms = await sampler.sample(slowToRecord, 1);
      // The heater, then the calls.
      expect(submit).toHaveBeenCalledTimes(2);
      expect(gpu!.pipelines.keys().some((key) => key.startsWith('gpu-heater'))).toBe(true);
      // Neither the heater (~30 ms) nor the recording counts.
      expect(ms).toBeGreaterThan(0);
      expect(ms).toBeLessThan(15);
    });
  });

  it('timestamp: the first heater run on a device stays short until its own timestamps measured its rate', async () => {
    // A device of its own: the heater's rate is kept per device, and earlier tests have measured the shared one's.
    if (!gpu!.caps.timestampQuery) return;
    const device = (await openTestDevice())!;
    const sampler = createCallSampler(device, 'timestamp');
    const seed = freshSeed();
    const [a, b] = [randn(device, [32, 32], { seed }), randn(device, [32, 32], { seed: seed + 1 })];
    try {
      const slowToRecord = () => {
        const until = performance.now() + 30;
        while (performance.now() < until);
        return [matmul(a, b)];
      };
      await sampler.sample(slowToRecord, 1);
      // Heated from here on: at an assumed 1 ns per iteration lavapipe (~420 ns) ran this first heater for ~13 s.
      for (let heated = 0; heated < 2; heated++) {
        const start = performance.now();
        await sampler.sample(slowToRecord, 1);
        expect(performance.now() - start).toBeLessThan(2000);
      }
    } finally {
      sampler.destroy();
      a.dispose();
      b.dispose();
      device.destroy();
    }
  });

  for (const method of ['timestamp', 'wall-clock'] as TimingMethod[]) {
    it(`${method}: times the calls, longer for more work, and disposes what they return`, async () => {
      const device = gpu!;
      if (method === 'timestamp' && !device.caps.timestampQuery) return;
      const seed = freshSeed();
      const [a, b] = [randn(device, [192, 192], { seed }), randn(device, [192, 192], { seed: seed + 1 })];
      const returned: Tensor[] = [];
      const call = (products: number) => () =>
        Array.from({ length: products }, () => {
          const product = matmul(a, b);
          returned.push(product);
          return product;
        });
      await expectNoGpuErrors(device, async () => {
        const sampler = createCallSampler(device, method);
        try {
          expect(sampler.method).toBe(method);
          await sampler.sample(call(1), 1);
          const timeOf = async (products: number) => {
            const samples: number[] = [];
            for (let sample = 0; sample < 3; sample++) samples.push(await sampler.sample(call(products), 2));
            return median(samples);
          };
          const one = await timeOf(1);
          const eight = await timeOf(8);
          expect(one).toBeGreaterThan(0);
          expect(eight).toBeGreaterThan(2 * one);
          expect(returned.every((t) => t.isDisposed)).toBe(true);
        } finally {
          sampler.destroy();
          a.dispose();
          b.dispose();
        }
      });
    });
  }
});
