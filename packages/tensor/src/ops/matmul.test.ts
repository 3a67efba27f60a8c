import { afterAll, describe, expect, it } from 'vitest';
import { cpuDevice, type Device } from '../device';
import { DTypeError, ShapeError } from '../errors';
import { numel } from '../shape';
import { fromValues } from '../tensor';
import { expectNoGpuErrors, freshSeed, openTestDevice, randomValues } from '../testing';
import { matmul } from './matmul';
import { checkGradients, expectGpuMatchesCpu, float64Tensor, valuesOf } from './test-support';

const gpu = await openTestDevice();
afterAll(() => gpu?.destroy());

const random = (device: Device, shape: number[], seed: number, dtype: 'f32' | 'f16' = 'f32') =>
  fromValues(device, dtype, randomValues(numel(shape), seed), shape);

describe('matmul on the CPU', () => {
  it('matches a float64 triple loop, with transposes and batch broadcasting', () => {
    const seed = freshSeed();
    const a = randomValues(2 * 3 * 4, seed);
    const b = randomValues(4 * 5, seed + 1);
    const out = valuesOf(matmul(float64Tensor(a, [2, 3, 4]), float64Tensor(b, [4, 5])));
    for (let batch = 0; batch < 2; batch++) {
      for (let i = 0; i < 3; i++) {
        for (let j = 0; j < 5; j++) {
          let expected = 0;
          for (let k = 0; k < 4; k++) expected += a[batch * 12 + i * 4 + k]! * b[k * 5 + j]!;
          expect(out[(batch * 3 + i) * 5 + j], `seed ${seed}`).toBeCloseTo(expected, 12);
        }
      }
    }
    // aᵀ and bᵀ through options equal explicit transposed views.
    const x = float64Tensor(a, [2, 4, 3]);
    const y = float64Tensor(b, [5, 4]);
    const viaOptions = valuesOf(matmul(x, y, { transposeA: true, transposeB: true }));
    const viaViews = valuesOf(matmul(x.transpose(1, 2), y.transpose(0, 1)));
    expect(Array.from(viaOptions)).toEqual(Array.from(viaViews));
  });

  it('has gradients that match float64 central differences (all transpose combinations, broadcast batch)', () => {
    const seed = freshSeed();
    for (const transposeA of [false, true]) {
      for (const transposeB of [false, true]) {
        const a = { values: randomValues(2 * 3 * 4, seed), shape: transposeA ? [2, 4, 3] : [2, 3, 4] };
        const b = { values: randomValues(4 * 5, seed + 1), shape: transposeB ? [1, 5, 4] : [1, 4, 5] };
        const check = checkGradients((x, y) => matmul(x!, y!, { transposeA, transposeB }), [a, b], seed);
        expect(check.maxError, `transposeA ${transposeA} transposeB ${transposeB} seed ${seed}: ${check.where}`).toBeLessThan(1e-6);
      }
    }
  });

  it('throws typed errors naming the shapes', () => {
    const device = cpuDevice();
    const a = random(device, [3, 4], 1);
    expect(() => matmul(a, random(device, [5, 2], 2))).toThrow(ShapeError);
    expect(() => matmul(a, random(device, [5, 2], 2))).toThrow(/K=4.*K=5/);
    expect(() => matmul(a, random(device, [4], 2))).toThrow(/rank >= 2/);
    expect(() => matmul(random(device, [2, 3, 4], 1), random(device, [3, 4, 2], 2))).toThrow(/broadcast/);
    expect(() => matmul(fromValues(device, 'bool', [1, 0, 1, 1], [2, 2]), a)).toThrow(DTypeError);
  });
});

describe.skipIf(!gpu)('matmul on the GPU matches the CPU', () => {
  const tolerance = (k: number) => ({ rtol: 1e-5, atol: 2e-6 * Math.sqrt(k) });

  it('on odd shapes, tile edges and strided views', async () => {
    const seed = freshSeed();
    await expectNoGpuErrors(gpu!, async () => {
      for (const [m, k, n] of [[1, 1, 1], [3, 5, 7], [65, 17, 63], [64, 40, 129], [17, 1025, 9]] as const) {
        await expectGpuMatchesCpu(
          gpu!,
          (d) => [random(d, [m, k], seed), random(d, [k, n], seed + 1)],
          (a, b) => matmul(a!, b!),
          tolerance(k),
          `matmul ${m}x${k}x${n} seed ${seed}`,
        );
      }
      // [B, L, H, D] memory read as [B, H, L, D]: q · kᵀ with permuted views and transposeB.
      await expectGpuMatchesCpu(
        gpu!,
        (d) => [random(d, [2, 17, 3, 40], seed + 2).permute([0, 2, 1, 3]), random(d, [2, 19, 3, 40], seed + 3).permute([0, 2, 1, 3])],
        (q, key) => matmul(q!, key!, { transposeB: true }),
        tolerance(40),
        `q·kᵀ permuted seed ${seed}`,
      );
      // Broadcast batch dims and transposeA.
      await expectGpuMatchesCpu(
        gpu!,
        (d) => [random(d, [3, 1, 9, 5], seed + 4), random(d, [2, 9, 11], seed + 5)],
        (a, b) => matmul(a!, b!, { transposeA: true }),
        tolerance(9),
        `broadcast batch seed ${seed}`,
      );
      // f16 inputs (accumulated in f32, rounded once).
      await expectGpuMatchesCpu(
        gpu!,
        (d) => [random(d, [2, 33, 59], seed + 6, 'f16'), random(d, [2, 59, 21], seed + 7, 'f16')],
        (a, b) => matmul(a!, b!),
        { rtol: 2 ** -9, atol: 2 ** -12 },
        `f16 seed ${seed}`,
      );
    });
  });

  it('has the same gradients as the CPU', async () => {
    const seed = freshSeed();
    await expectNoGpuErrors(gpu!, async () => {
      const grads = async (device: Device) => {
        const a = fromValues(device, 'f32', randomValues(2 * 7 * 5, seed), [2, 7, 5]);
        const b = fromValues(device, 'f32', randomValues(6 * 5, seed + 1), [6, 5]);
        a.requiresGrad = true;
        b.requiresGrad = true;
        const out = matmul(a, b, { transposeB: true });
        out.backward(fromValues(device, 'f32', randomValues(out.size, seed + 2), out.shape));
        return [await a.grad!.toArray(), await b.grad!.toArray()];
      };
      const [onGpu, onCpu] = [await grads(gpu!), await grads(cpuDevice())];
      for (let i = 0; i < 2; i++) {
        onGpu[i]!.forEach((value, j) => expect(value, `seed ${seed}`).toBeCloseTo(onCpu[i]![j]!, 5));
      }
    });
  });
});
