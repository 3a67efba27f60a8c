/**
 * Resources: many forward+backward calls in a loop leave the buffer pool where it started (every buffer a call
 * takes comes back; the pool stops creating buffers once warm), and many concurrent async calls give exactly the
 * results of the same calls in sequence.
 *
 * Iterations: 10,000 on the cpu backend (the CPU-cheapest configuration, no pool); on WebGPU
 * WEBATTN_RESOURCE_ITERATIONS (default 1,000 to keep CI short on lavapipe; the 10,000 on a real GPU).
 */
import { cpuDevice, noGrad, tensor, type Device, type Tensor } from '@webattn/tensor';
import { expectNoGpuErrors, freshSeed, openTestDevice, randomValues } from '@webattn/tensor/testing';
import { afterAll, describe, expect, it } from 'vitest';
import type { SdpaBackendName } from './backend';
import { scaledDotProductAttention } from './sdpa';

const gpu = await openTestDevice();
afterAll(() => gpu?.destroy());

const GPU_ITERATIONS = Number(process.env.WEBATTN_RESOURCE_ITERATIONS ?? 1000);
const CPU_ITERATIONS = 10_000;
const seed = freshSeed();
const shape = [1, 2, 3, 4];

function leaves(device: Device) {
  const make = (offset: number) => tensor(device, randomValues(24, seed + offset), shape, { requiresGrad: true });
  return { q: make(0), k: make(1), v: make(2), gradOut: tensor(device, randomValues(24, seed + 3), shape) };
}

/** One forward+backward on `backend`, disposing everything it made (the gradients included). */
function step(inputs: ReturnType<typeof leaves>, backend: SdpaBackendName, isCausal: boolean): void {
  const out = scaledDotProductAttention(inputs.q, inputs.k, inputs.v, { backends: [backend], isCausal });
  out.backward(inputs.gradOut);
  out.dispose();
  for (const t of [inputs.q, inputs.k, inputs.v]) {
    t.grad?.dispose();
    t.grad = null;
  }
}

describe.skipIf(!gpu)('resources on WebGPU', () => {
  const device = gpu!;

  for (const backend of ['flash', 'math'] as const) {
    it(`${GPU_ITERATIONS} forward+backward calls on ${backend}: the pool returns to its baseline and stops growing`, async () => {
      await expectNoGpuErrors(device, async () => {
        const inputs = leaves(device);
        // Warm up: pipelines, and the pool's free lists (calls recorded between two submits cannot reuse each
        // other's buffers, so the pool grows for the first few hundred calls, to a fixed size).
        for (let i = 0; i < 300; i++) step(inputs, backend, i % 2 === 0);
        await device.sync();
        const baseline = device.pool.stats();
        let peakLive = baseline.liveBytes;
        for (let i = 0; i < GPU_ITERATIONS; i++) {
          step(inputs, backend, i % 2 === 0);
          if (i % 100 === 99) {
            await device.sync();
            peakLive = Math.max(peakLive, device.pool.stats().liveBytes);
          }
        }
        await device.sync();
        const after = device.pool.stats();
        expect(after.inUseBytes, 'bytes still handed out after the loop (less: the FinalizationRegistry returned something older)').toBeLessThanOrEqual(baseline.inUseBytes);
        expect(after.created - baseline.created, `buffers created during ${GPU_ITERATIONS} calls on a warm pool`).toBe(0);
        expect(peakLive, 'pool bytes grew during the loop').toBe(baseline.liveBytes);
        expect(after.reused - baseline.reused, 'every buffer came from the pool').toBeGreaterThan(GPU_ITERATIONS);
        [inputs.q, inputs.k, inputs.v, inputs.gradOut].forEach((t) => t.dispose());
      });
    }, 300_000);
  }

  it('64 concurrent async calls give the results of the same calls in sequence', async () => {
    await expectNoGpuErrors(device, async () => {
      const count = 64;
      const make = (index: number) =>
        ['q', 'k', 'v'].map((_, part) => tensor(device, randomValues(24, seed + 10 * index + part), shape)) as [Tensor, Tensor, Tensor];
      const call = async (index: number, backend: SdpaBackendName) => {
        const [q, k, v] = make(index);
        // Yield between steps so the calls interleave.
        await Promise.resolve();
        const out = noGrad(() => scaledDotProductAttention(q, k, v, { backends: [backend], isCausal: index % 2 === 1 }));
        await new Promise((resolve) => setTimeout(resolve, index % 3));
        const values = await out.toArray();
        [q, k, v, out].forEach((t) => t.dispose());
        return values;
      };
      const backendOf = (index: number): SdpaBackendName => (index % 2 === 0 ? 'flash' : 'math');
      const sequential: Float32Array[] = [];
      for (let i = 0; i < count; i++) sequential.push((await call(i, backendOf(i))) as Float32Array);
      const concurrent = await Promise.all(Array.from({ length: count }, (_, i) => call(i, backendOf(i))));
      concurrent.forEach((values, i) => expect(values, `call ${i} (seed ${seed})`).toEqual(sequential[i]));
    });
  });
});

describe('resources on the CPU', () => {
  it(`${CPU_ITERATIONS} forward+backward calls on the cpu backend run and give the same gradients at the end`, async () => {
    const inputs = leaves(cpuDevice());
    const out = scaledDotProductAttention(inputs.q, inputs.k, inputs.v, { backends: ['cpu'] });
    out.backward(inputs.gradOut);
    const first = await inputs.q.grad!.toArray();
    out.dispose();
    inputs.q.grad!.dispose();
    inputs.q.grad = null;
    for (const t of [inputs.k, inputs.v]) {
      t.grad?.dispose();
      t.grad = null;
    }
    for (let i = 0; i < CPU_ITERATIONS - 1; i++) step(inputs, 'cpu', false);
    const last = scaledDotProductAttention(inputs.q, inputs.k, inputs.v, { backends: ['cpu'] });
    last.backward(inputs.gradOut);
    expect(await inputs.q.grad!.toArray()).toEqual(first);
  }, 120_000);
});
