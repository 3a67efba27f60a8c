import { afterAll, describe, expect, it } from 'vitest';
import { isGradEnabled, noGrad } from './autograd';
import { cpuDevice, type Device } from './device';
import { AutogradError, ShapeError } from './errors';
import { add, div, exp, gelu, log, mul, relu, scale, sqrt, sub } from './ops/arithmetic';
import { cast } from './ops/cast';
import { cat } from './ops/cat';
import { dropout } from './ops/dropout';
import { maskedFill, where } from './ops/select';
import { logSoftmax } from './ops/softmax';
import { matmul } from './ops/matmul';
import { mean, sum } from './ops/reduce';
import { softmax } from './ops/softmax';
import { layerNorm } from './ops/layer-norm';
import { checkGradients, float64Tensor, valuesOf } from './ops/test-support';
import { fromValues, type Tensor } from './tensor';
import { expectNoGpuErrors, freshSeed, openTestDevice, randomValues } from './testing';

const gpu = await openTestDevice();
afterAll(() => gpu?.destroy());

const leaf = (device: Device, values: number[], shape: number[]): Tensor => {
  const t = fromValues(device, 'f32', values, shape);
  t.requiresGrad = true;
  return t;
};

describe('autograd', () => {
  it('backpropagates a scalar with default gradient 1 and accumulates into leaves', async () => {
    const x = leaf(cpuDevice(), [1, -2, 3], [3]);
    sum(mul(x, x)).backward();
    expect(Array.from(await x.grad!.toArray())).toEqual([2, -4, 6]);
    sum(scale(x, 3)).backward(); // a second graph: gradients add up
    expect(Array.from(await x.grad!.toArray())).toEqual([5, -1, 9]);
  });

  it('sums gradients of a tensor used along several paths (diamond)', async () => {
    const x = leaf(cpuDevice(), [0.5, 2], [2]);
    const y = relu(x);
    const z = add(mul(y, 3), mul(y, y)); // dz/dx = 3 + 2x
    z.backward(fromValues(cpuDevice(), 'f32', [1, 1], [2]));
    expect(Array.from(await x.grad!.toArray())).toEqual([4, 7]);
    expect(y.grad).toBeNull(); // non-leaves keep no gradient
  });

  it('refuses non-scalars without a gradient, tensors without grad, and mismatched gradients', () => {
    const x = leaf(cpuDevice(), [1, 2], [2]);
    expect(() => mul(x, 2).backward()).toThrow(AutogradError);
    expect(() => mul(x, 2).backward()).toThrow(/\[2\].*sum\(\)/);
    expect(() => fromValues(cpuDevice(), 'f32', [1], [1]).backward()).toThrow(AutogradError);
    expect(() => mul(x, 2).backward(fromValues(cpuDevice(), 'f32', [1, 2, 3], [3]))).toThrow(ShapeError);
  });

  it('refuses a second backward through a freed graph', () => {
    const x = leaf(cpuDevice(), [1, 2], [2]);
    const loss = sum(mul(x, x));
    loss.backward();
    expect(() => loss.backward()).toThrow(/second time/);
  });

  it('records nothing inside noGrad (sync and async) and after detach()', async () => {
    const x = leaf(cpuDevice(), [1, 2], [2]);
    expect(isGradEnabled()).toBe(true);
    const y = noGrad(() => {
      expect(isGradEnabled()).toBe(false);
      return mul(x, 2);
    });
    expect(y.requiresGrad).toBe(false);
    expect(y.gradFn).toBeNull();
    expect(isGradEnabled()).toBe(true);
    const pending = noGrad(async () => {
      await Promise.resolve();
      return mul(x, 2);
    });
    expect(isGradEnabled()).toBe(false);
    expect((await pending).gradFn).toBeNull();
    expect(isGradEnabled()).toBe(true);
    expect(() => noGrad(() => { throw new Error('boom'); })).toThrow('boom');
    expect(isGradEnabled()).toBe(true);
    const detached = x.detach();
    expect(detached.requiresGrad).toBe(false);
    expect(mul(detached, 2).gradFn).toBeNull();
    expect(mul(x, 2).gradFn?.name).toBe('mul');
  });

  it('flows through views (reshape, permute, expand, unsqueeze, narrow) into dense leaf gradients', () => {
    const seed = freshSeed();
    const x = { values: randomValues(24, seed), shape: [2, 3, 4] };
    const check = checkGradients(
      (t) => mul(t!.permute([2, 0, 1]).reshape([4, 6]).narrow(1, 1, 4).unsqueeze(0).expand([3, 4, 4]), 1.5),
      [x],
      seed,
    );
    expect(check.maxError, `seed ${seed}: ${check.where}`).toBeLessThan(1e-6);
    const t = float64Tensor(x.values, x.shape, true);
    sum(t.transpose(0, 2)).backward();
    expect(t.grad!.isContiguous()).toBe(true);
    expect(Array.from(valuesOf(t.grad!))).toEqual(new Array(24).fill(1));
  });

  it('trains a tiny MLP graph whose gradients match float64 central differences', () => {
    const seed = freshSeed();
    const x = { values: randomValues(3 * 4, seed), shape: [3, 4] };
    const w = { values: randomValues(4 * 5, seed + 1), shape: [4, 5] };
    const g = { values: randomValues(5, seed + 2), shape: [5] };
    const check = checkGradients(
      (input, weight, gain) => mean(softmax(layerNorm(relu(matmul(input!, weight!)), 5, gain), -1), 0),
      [x, w, g],
      seed,
    );
    expect(check.maxError, `seed ${seed}: ${check.where}`).toBeLessThan(1e-6);
  });

  it.skipIf(!gpu)('gives the same gradients on the GPU as on the CPU for a composite graph', async () => {
    const seed = freshSeed();
    await expectNoGpuErrors(gpu!, async () => {
      const grads = async (device: Device) => {
        const x = leaf(device, Array.from(randomValues(3 * 8, seed)), [3, 8]);
        const w = leaf(device, Array.from(randomValues(8 * 8, seed + 1)), [8, 8]);
        const h = layerNorm(relu(matmul(x, w)), 8);
        mean(softmax(add(h, x), -1)).backward();
        return [await x.grad!.toArray(), await w.grad!.toArray()];
      };
      const [onGpu, onCpu] = [await grads(gpu!), await grads(cpuDevice())];
      for (let i = 0; i < 2; i++) onGpu[i]!.forEach((v, j) => expect(v, `seed ${seed}`).toBeCloseTo(onCpu[i]![j]!, 5));
    });
  });

  it.skipIf(!gpu)('returns every intermediate buffer to the pool after backward (no leaks)', async () => {
    const seed = freshSeed();
    await expectNoGpuErrors(gpu!, async () => {
      const device = gpu!;
      const x = leaf(device, Array.from(randomValues(4 * 6, seed)), [4, 6]);
      const w = leaf(device, Array.from(randomValues(6 * 6, seed + 1)), [6, 6]);
      const flags = fromValues(device, 'bool', [1, 0, 1, 1, 0, 1], [6]);
      await device.sync();
      const baseline = device.pool.stats().inUseBytes;
      const made: Tensor[] = [];
      const keep = (t: Tensor) => (made.push(t), t);
      const h = keep(gelu(keep(matmul(x, w, { transposeB: true }))));
      const positive = keep(add(keep(exp(h)), 1));
      const mixed = keep(sub(keep(div(keep(sqrt(positive)), keep(log(positive)))), keep(mul(h, 0.5))));
      const masked = keep(where(flags, keep(maskedFill(mixed, flags, 0)), h));
      const joined = keep(cat([masked, keep(cast(keep(cast(h, 'f16')), 'f32'))], 1));
      const normalized = keep(layerNorm(keep(dropout(joined, 0.25, { seed })), 12));
      const loss = keep(mean(keep(logSoftmax(keep(scale(keep(normalized.narrow(1, 2, 8)), 2)), -1))));
      loss.backward();
      for (const t of made) t.dispose();
      x.grad!.dispose();
      w.grad!.dispose();
      await device.sync();
      // ≤, not =: the FinalizationRegistry may meanwhile return the storage of earlier tensors that were collected
      // without dispose(); a leak would still push the count above the baseline.
      expect(device.pool.stats().inUseBytes, `seed ${seed}`).toBeLessThanOrEqual(baseline);
    });
  });
});
