import { afterAll, describe, expect, it } from 'vitest';
import type { Device } from '../device';
import { ShapeError } from '../errors';
import { numel } from '../shape';
import { fromValues, type Tensor } from '../tensor';
import { expectNoGpuErrors, freshSeed, openTestDevice, randomValues } from '../testing';
import { mean, sum } from './reduce';
import { checkGradients, expectGpuGradientsMatchCpu, expectGpuMatchesCpu, float64Tensor, valuesOf } from './test-support';

const gpu = await openTestDevice();
afterAll(() => gpu?.destroy());

const random = (device: Device, shape: number[], seed: number, dtype: 'f32' | 'f16' = 'f32', spread = 3) =>
  fromValues(device, dtype, randomValues(numel(shape), seed, -spread, spread), shape);

describe('sum and mean', () => {
  it('reduce the requested dims on the CPU (checked by hand)', () => {
    const x = float64Tensor([1, 2, 3, 4, 5, 6], [2, 3]);
    expect(Array.from(valuesOf(sum(x)))).toEqual([21]);
    expect(Array.from(valuesOf(sum(x, 0)))).toEqual([5, 7, 9]);
    expect(Array.from(valuesOf(mean(x, -1, true)))).toEqual([2, 5]);
    expect(sum(x, 1, true).shape).toEqual([2, 1]);
    expect(sum(x).shape).toEqual([]);
    expect(() => sum(x, 2)).toThrow(ShapeError);
  });

  it('have gradients matching float64 central differences', () => {
    const seed = freshSeed();
    const x = { values: randomValues(3 * 4 * 5, seed), shape: [3, 4, 5] };
    const cases: [string, (t?: Tensor) => Tensor][] = [
      ['sum all', (t) => sum(t!)],
      ['sum [0, 2]', (t) => sum(t!, [0, 2])],
      ['mean -1 keepDim', (t) => mean(t!, -1, true)],
      ['mean of a transposed view', (t) => mean(t!.transpose(0, 2), [1])],
    ];
    for (const [name, fn] of cases) {
      const check = checkGradients(fn, [x], seed);
      expect(check.maxError, `${name} seed ${seed}: ${check.where}`).toBeLessThan(1e-6);
    }
  });

  it.skipIf(!gpu)('match the CPU on the GPU (odd shapes, strided views, f16, 1025 columns)', async () => {
    const seed = freshSeed();
    await expectNoGpuErrors(gpu!, async () => {
      const cases: [string, (d: Device) => ReturnType<typeof random>, (t: ReturnType<typeof random>) => ReturnType<typeof random>][] = [
        ['sum all', (d) => random(d, [3, 5, 7], seed), (t) => sum(t)],
        ['sum [0, 2] of a permuted view', (d) => random(d, [7, 5, 3], seed).permute([2, 1, 0]), (t) => sum(t, [0, 2])],
        ['mean -1 keepDim', (d) => random(d, [3, 5, 7], seed), (t) => mean(t, -1, true)],
        ['sum 1 f16', (d) => random(d, [3, 5, 7], seed, 'f16'), (t) => sum(t, 1)],
        ['mean of 1025', (d) => random(d, [2, 1025], seed), (t) => mean(t, 1)],
        // More rows than one grid dimension holds (65535): the 2-D workgroup grid path.
        ['sum of 65600 rows', (d) => random(d, [65600, 2], seed), (t) => sum(t, 1)],
      ];
      for (const [name, make, op] of cases) {
        await expectGpuMatchesCpu(gpu!, (d) => [make(d)], (t) => op(t!), { rtol: 2e-5, atol: 1e-5 }, `${name} seed ${seed}`);
        await expectGpuGradientsMatchCpu(gpu!, (d) => [make(d)], (t) => op(t!), { rtol: 1e-5, atol: 1e-6 }, seed, name);
      }
    });
  });
});
