import { afterAll, describe, expect, it } from 'vitest';
import { cpuDevice, type Device } from '../device';
import { DTypeError, InvalidArgumentError } from '../errors';
import { dropoutThreshold, elementWord, seedKey } from '../philox';
import { fromValues } from '../tensor';
import { expectNoGpuErrors, freshSeed, openTestDevice, randomValues } from '../testing';
import { dropout } from './dropout';
import { checkGradients, expectGpuGradientsMatchCpu } from './test-support';

const gpu = await openTestDevice();
afterAll(() => gpu?.destroy());

describe('dropout', () => {
  it('keeps element i iff elementWord(seedKey(seed), offset, i) >= dropoutThreshold(p), scaled by 1/(1−p)', async () => {
    const seed = freshSeed();
    const values = randomValues(3 * 5 * 7, seed, 0.5, 2); // never 0, so a zero output means "dropped"
    const x = fromValues(cpuDevice(), 'f32', values, [3, 5, 7]);
    const out = await dropout(x, 0.3, { seed, offset: 5 }).toArray();
    const key = seedKey(seed);
    const threshold = dropoutThreshold(0.3);
    out.forEach((value, i) => {
      const keep = elementWord(key, 5, i) >= threshold;
      expect(value, `element ${i} seed ${seed}`).toBeCloseTo(keep ? values[i]! / 0.7 : 0, 5);
    });
  });

  it('keeps a fraction within 3σ of 1 − p, and evaluation mode copies', async () => {
    const seed = freshSeed();
    const count = 20000;
    const p = 0.25;
    const x = fromValues(cpuDevice(), 'f32', new Float32Array(count).fill(1), [count]);
    const out = await dropout(x, p, { seed }).toArray();
    const kept = out.filter((v) => v !== 0).length;
    const sigma = Math.sqrt(count * p * (1 - p));
    expect(Math.abs(kept - count * (1 - p)), `seed ${seed}`).toBeLessThan(3 * sigma);
    expect(Array.from(await dropout(x, p, { seed, training: false }).toArray())).toEqual(Array.from(await x.toArray()));
  });

  it('has the gradient of its mask (float64 central differences)', () => {
    const seed = freshSeed();
    const check = checkGradients((t) => dropout(t!, 0.4, { seed }), [{ values: randomValues(30, seed), shape: [5, 6] }], seed);
    expect(check.maxError, `seed ${seed}: ${check.where}`).toBeLessThan(1e-6);
  });

  it('rejects bad arguments with typed errors', () => {
    const x = fromValues(cpuDevice(), 'f32', [1, 2], [2]);
    expect(() => dropout(x, 1, { seed: 1 })).toThrow(InvalidArgumentError);
    expect(() => dropout(x, -0.1, { seed: 1 })).toThrow(/\[0, 1\)/);
    expect(() => dropout(x, 0.5, { seed: -1 })).toThrow(InvalidArgumentError);
    expect(() => dropout(x, 0.5, { seed: 1, offset: 1.5 })).toThrow(InvalidArgumentError);
    expect(() => dropout(fromValues(cpuDevice(), 'bool', [1], [1]), 0.5, { seed: 1 })).toThrow(DTypeError);
  });

  it.skipIf(!gpu)('gives bit-identical masks on the GPU and the CPU (f32 and f16, strided input)', async () => {
    const seed = freshSeed();
    await expectNoGpuErrors(gpu!, async () => {
      for (const dtype of ['f32', 'f16'] as const) {
        const run = async (device: Device) => {
          const x = fromValues(device, dtype, randomValues(7 * 5 * 3, seed, 0.5, 2), [7, 5, 3]).permute([2, 1, 0]);
          return dropout(x, 0.37, { seed, offset: 11 }).toArray();
        };
        const [onGpu, onCpu] = [await run(gpu!), await run(cpuDevice())];
        expect(onGpu.map((v) => (v === 0 ? 0 : 1)), `${dtype} seed ${seed}`).toEqual(onCpu.map((v) => (v === 0 ? 0 : 1)));
        onGpu.forEach((v, i) => expect(Math.abs(v - onCpu[i]!), `${dtype} seed ${seed}`).toBeLessThanOrEqual(Math.abs(onCpu[i]!) * 2 ** -10));
      }
      await expectGpuGradientsMatchCpu(
        gpu!,
        (d) => [fromValues(d, 'f32', randomValues(5 * 7, seed), [5, 7]).transpose(0, 1)],
        (x) => dropout(x!, 0.5, { seed, offset: 3 }),
        { rtol: 1e-6, atol: 0 },
        seed,
        'dropout gradient',
      );
    });
  });
});
