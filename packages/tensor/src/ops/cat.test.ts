import { afterAll, describe, expect, it } from 'vitest';
import { cpuDevice, type Device } from '../device';
import { DTypeError, InvalidArgumentError, ShapeError } from '../errors';
import { numel } from '../shape';
import { fromValues } from '../tensor';
import { expectNoGpuErrors, freshSeed, openTestDevice, randomValues } from '../testing';
import { mul } from './arithmetic';
import { cat, narrow } from './cat';
import { checkGradients, expectGpuGradientsMatchCpu, expectGpuMatchesCpu, float64Tensor, valuesOf } from './test-support';

const gpu = await openTestDevice();
afterAll(() => gpu?.destroy());

const random = (device: Device, shape: number[], seed: number, dtype: 'f32' | 'f16' = 'f32') =>
  fromValues(device, dtype, randomValues(numel(shape), seed), shape);

describe('cat and narrow', () => {
  it('concatenate and slice as PyTorch does', () => {
    const a = float64Tensor([1, 2, 3, 4], [2, 2]);
    const b = float64Tensor([5, 6], [2, 1]);
    expect(Array.from(valuesOf(cat([a, b], 1)))).toEqual([1, 2, 5, 3, 4, 6]);
    expect(Array.from(valuesOf(cat([a, a], 0)))).toEqual([1, 2, 3, 4, 1, 2, 3, 4]);
    const view = narrow(float64Tensor([0, 1, 2, 3, 4, 5], [2, 3]), 1, 1, 2);
    expect(view.shape).toEqual([2, 2]);
    expect(view.offset).toBe(1);
    expect(Array.from(valuesOf(view))).toEqual([1, 2, 4, 5]);
  });

  it('narrow is a view sharing storage', () => {
    const x = random(cpuDevice(), [4, 6], 1);
    const view = x.narrow(0, 1, 2);
    expect(view.storage).toBe(x.storage);
  });

  it('have gradients matching float64 central differences', () => {
    const seed = freshSeed();
    const a = { values: randomValues(6, seed), shape: [2, 3] };
    const b = { values: randomValues(4, seed + 1), shape: [2, 2] };
    let check = checkGradients((x, y) => cat([x!, mul(y!, y!)], -1), [a, b], seed);
    expect(check.maxError, `cat seed ${seed}: ${check.where}`).toBeLessThan(1e-6);
    check = checkGradients((x) => mul(x!.narrow(1, 1, 2), 3), [a], seed);
    expect(check.maxError, `narrow seed ${seed}: ${check.where}`).toBeLessThan(1e-6);
  });

  it('throw typed errors', () => {
    const device = cpuDevice();
    const a = random(device, [2, 3], 1);
    expect(() => cat([a, random(device, [3, 3], 2)], 1)).toThrow(ShapeError);
    expect(() => cat([a, random(device, [2, 3], 2, 'f16')], 0)).toThrow(DTypeError);
    expect(() => cat([], 0)).toThrow(InvalidArgumentError);
    expect(() => narrow(a, 1, 2, 2)).toThrow(/start \+ length <= 3/);
    expect(() => narrow(a, 2, 0, 1)).toThrow(ShapeError);
  });

  it.skipIf(!gpu)('match the CPU on the GPU (f32, f16, bool, strided inputs)', async () => {
    const seed = freshSeed();
    await expectNoGpuErrors(gpu!, async () => {
      await expectGpuMatchesCpu(
        gpu!,
        (d) => [random(d, [3, 5, 7], seed), random(d, [7, 2, 3], seed + 1).permute([2, 1, 0]), random(d, [3, 1, 7], seed + 2)],
        (a, b, c) => cat([a!, b!, c!], 1),
        { rtol: 0, atol: 0 },
        `f32 seed ${seed}`,
      );
      await expectGpuMatchesCpu(gpu!, (d) => [random(d, [3, 5], seed, 'f16'), random(d, [3, 3], seed + 1, 'f16')], (a, b) => cat([a!, b!], 1), { rtol: 0, atol: 0 }, `f16 seed ${seed}`);
      const bools = (d: Device, n: number, s: number) => fromValues(d, 'bool', Array.from(randomValues(n, s), (v) => (v > 0 ? 1 : 0)), [n]);
      await expectGpuMatchesCpu(gpu!, (d) => [bools(d, 5, seed), bools(d, 6, seed + 1)], (a, b) => cat([a!, b!], 0), { rtol: 0, atol: 0 }, `bool seed ${seed}`);
      await expectGpuMatchesCpu(gpu!, (d) => [random(d, [5, 9], seed)], (a) => narrow(a!, 1, 3, 4).transpose(0, 1), { rtol: 0, atol: 0 }, `narrow seed ${seed}`);
      await expectGpuGradientsMatchCpu(
        gpu!,
        (d) => [random(d, [3, 5, 7], seed), random(d, [7, 2, 3], seed + 1).permute([2, 1, 0])],
        (a, b) => cat([a!.narrow(2, 1, 3), b!.narrow(2, 0, 3)], 1),
        { rtol: 0, atol: 0 },
        seed,
        'cat of narrowed views',
      );
    });
  });
});
