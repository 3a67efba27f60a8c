import { afterAll, describe, expect, it } from 'vitest';
import { cpuDevice, type Device } from '../device';
import { ShapeError } from '../errors';
import { numel } from '../shape';
import { fromValues } from '../tensor';
import { expectNoGpuErrors, freshSeed, openTestDevice, randomValues } from '../testing';
import { layerNorm } from './layer-norm';
import { checkGradients, expectGpuMatchesCpu, float64Tensor, valuesOf } from './test-support';

const gpu = await openTestDevice();
afterAll(() => gpu?.destroy());

const random = (device: Device, shape: number[], seed: number, dtype: 'f32' | 'f16' = 'f32') =>
  fromValues(device, dtype, randomValues(numel(shape), seed, -3, 3), shape);

describe('layerNorm', () => {
  it('follows PyTorch semantics (biased variance, eps inside the root, affine)', () => {
    const x = float64Tensor([1, 2, 3, 4, 10, 20, 30, 40], [2, 4]);
    const weight = float64Tensor([1, 2, 3, 4], [4]);
    const bias = float64Tensor([0.5, 0, 0, -0.5], [4]);
    const out = valuesOf(layerNorm(x, [4], weight, bias, 1e-5));
    const rstd = 1 / Math.sqrt(1.25 + 1e-5); // var of 1..4 (biased) = 1.25
    expect(out[0]).toBeCloseTo(-1.5 * rstd * 1 + 0.5, 12);
    expect(out[3]).toBeCloseTo(1.5 * rstd * 4 - 0.5, 12);
    const rstdWide = 1 / Math.sqrt(125 + 1e-5);
    expect(out[5]).toBeCloseTo(-5 * rstdWide * 2, 12);
  });

  it('has gradients matching float64 central differences (x, weight, bias; two normalized dims)', () => {
    const seed = freshSeed();
    const x = { values: randomValues(3 * 4 * 5, seed, -2, 2), shape: [3, 4, 5] };
    const weight = { values: randomValues(20, seed + 1), shape: [4, 5] };
    const bias = { values: randomValues(20, seed + 2), shape: [4, 5] };
    let check = checkGradients((t, w, b) => layerNorm(t!, [4, 5], w, b), [x, weight, bias], seed);
    expect(check.maxError, `affine seed ${seed}: ${check.where}`).toBeLessThan(1e-6);
    check = checkGradients((t) => layerNorm(t!.transpose(0, 2), 3), [x], seed);
    expect(check.maxError, `plain seed ${seed}: ${check.where}`).toBeLessThan(1e-6);
  });

  it('throws typed errors naming the shapes', () => {
    const device = cpuDevice();
    const x = random(device, [2, 3, 4], 1);
    expect(() => layerNorm(x, [3])).toThrow(ShapeError);
    expect(() => layerNorm(x, [3])).toThrow(/\[3\].*\[2, 3, 4\]/);
    expect(() => layerNorm(x, 4, random(device, [3], 2))).toThrow(/weight/);
  });

  it.skipIf(!gpu)('matches the CPU on the GPU, forward and backward', async () => {
    const seed = freshSeed();
    await expectNoGpuErrors(gpu!, async () => {
      await expectGpuMatchesCpu(
        gpu!,
        (d) => [random(d, [3, 5, 7], seed), random(d, [7], seed + 1), random(d, [7], seed + 2)],
        (x, w, b) => layerNorm(x!, 7, w, b),
        { rtol: 1e-5, atol: 1e-5 },
        `affine seed ${seed}`,
      );
      await expectGpuMatchesCpu(gpu!, (d) => [random(d, [7, 5, 3], seed + 3).permute([2, 1, 0])], (x) => layerNorm(x!, [5, 7]), { rtol: 1e-5, atol: 1e-5 }, `view seed ${seed}`);
      await expectGpuMatchesCpu(gpu!, (d) => [random(d, [2, 1025], seed + 4, 'f16')], (x) => layerNorm(x!, 1025), { rtol: 2 ** -9, atol: 2 ** -12 }, `f16 seed ${seed}`);
      const grads = async (device: Device) => {
        const x = random(device, [3, 5, 7], seed + 5);
        const w = random(device, [7], seed + 6);
        x.requiresGrad = true;
        w.requiresGrad = true;
        layerNorm(x, 7, w).backward(random(device, [3, 5, 7], seed + 7));
        return [await x.grad!.toArray(), await w.grad!.toArray()];
      };
      const [onGpu, onCpu] = [await grads(gpu!), await grads(cpuDevice())];
      for (let i = 0; i < 2; i++) onGpu[i]!.forEach((v, j) => expect(v, `seed ${seed}`).toBeCloseTo(onCpu[i]![j]!, 4));
    });
  });
});
