import { afterAll, describe, expect, it } from 'vitest';
import { cpuDevice, type Device } from '../device';
import { numel } from '../shape';
import { fromValues, type Tensor } from '../tensor';
import { expectNoGpuErrors, freshSeed, openTestDevice, randomValues } from '../testing';
import { logSoftmax, softmax } from './softmax';
import { checkGradients, expectGpuMatchesCpu, float64Tensor, valuesOf } from './test-support';

const gpu = await openTestDevice();
afterAll(() => gpu?.destroy());

const random = (device: Device, shape: number[], seed: number, dtype: 'f32' | 'f16' = 'f32', spread = 3) =>
  fromValues(device, dtype, randomValues(numel(shape), seed, -spread, spread), shape);

describe('softmax and logSoftmax', () => {
  it('are stable for large logits and sum to one', () => {
    const x = float64Tensor([1000, 1001, 1002, -1000, 0, 1000], [2, 3]);
    const p = valuesOf(softmax(x, 1));
    expect(p[0]! + p[1]! + p[2]!).toBeCloseTo(1, 12);
    expect(p[2]).toBeCloseTo(Math.exp(2) / (1 + Math.E + Math.exp(2)), 12);
    const logP = valuesOf(logSoftmax(x, 1));
    expect(logP[5]).toBeCloseTo(-Math.log(1 + Math.exp(-1000) + Math.exp(-2000)), 12);
    expect(Number.isFinite(logP[3]!)).toBe(true);
  });

  it('have gradients matching float64 central differences', () => {
    const seed = freshSeed();
    const x = { values: randomValues(3 * 4 * 5, seed, -3, 3), shape: [3, 4, 5] };
    const cases: [string, (t?: Tensor) => Tensor][] = [
      ['softmax -1', (t) => softmax(t!, -1)],
      ['softmax 1', (t) => softmax(t!, 1)],
      ['logSoftmax 0', (t) => logSoftmax(t!, 0)],
      ['logSoftmax -1 of a view', (t) => logSoftmax(t!.transpose(0, 2), -1)],
    ];
    for (const [name, fn] of cases) {
      const check = checkGradients(fn, [x], seed);
      expect(check.maxError, `${name} seed ${seed}: ${check.where}`).toBeLessThan(1e-6);
    }
  });

  it.skipIf(!gpu)('match the CPU on the GPU', async () => {
    const seed = freshSeed();
    await expectNoGpuErrors(gpu!, async () => {
      for (const op of [softmax, logSoftmax]) {
        await expectGpuMatchesCpu(gpu!, (d) => [random(d, [3, 5, 7], seed, 'f32', 10)], (t) => op(t!, -1), { rtol: 1e-5, atol: 1e-6 }, `${op.name} -1 seed ${seed}`);
        await expectGpuMatchesCpu(gpu!, (d) => [random(d, [7, 5, 3], seed, 'f32', 10).permute([2, 1, 0])], (t) => op(t!, 1), { rtol: 1e-5, atol: 1e-6 }, `${op.name} 1 view seed ${seed}`);
        await expectGpuMatchesCpu(gpu!, (d) => [random(d, [4, 1025], seed, 'f16', 10)], (t) => op(t!, 1), { rtol: 2 ** -9, atol: 2 ** -14 }, `${op.name} f16 1025 seed ${seed}`);
      }
      const grads = async (device: Device) => {
        const x = random(device, [3, 5, 7], seed + 1);
        x.requiresGrad = true;
        const y = softmax(x, 1);
        y.backward(random(device, [3, 5, 7], seed + 2));
        return x.grad!.toArray();
      };
      const [onGpu, onCpu] = [await grads(gpu!), await grads(cpuDevice())];
      onGpu.forEach((value, i) => expect(value, `seed ${seed}`).toBeCloseTo(onCpu[i]!, 5));
    });
  });
});
