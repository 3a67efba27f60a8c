import { afterAll, describe, expect, it } from 'vitest';
import { cpuDevice, type Device } from '../device';
import { DTypeError, DeviceMismatchError, DisposedTensorError, InvalidArgumentError, ShapeError } from '../errors';
import { numel } from '../shape';
import { fromValues, type Tensor } from '../tensor';
import { expectNoGpuErrors, freshSeed, openTestDevice, randomValues } from '../testing';
import { add, copy, div, exp, gelu, log, mul, neg, relu, scale, sqrt, sub } from './arithmetic';
import { cast } from './cast';
import { erf } from './elementwise';
import { maskedFill, where } from './select';
import { checkGradients, expectGpuGradientsMatchCpu, expectGpuMatchesCpu } from './test-support';

const gpu = await openTestDevice();
afterAll(() => gpu?.destroy());

const random = (device: Device, shape: number[], seed: number, lo = -2, hi = 2, dtype: 'f32' | 'f16' = 'f32') =>
  fromValues(device, dtype, randomValues(numel(shape), seed, lo, hi), shape);
const mask = (device: Device, shape: number[], seed: number) =>
  fromValues(device, 'bool', Array.from(randomValues(numel(shape), seed), (v) => (v > 0 ? 1 : 0)), shape);
/** [3, 5, 7] read through a permuted view of [7, 5, 3] storage (non-contiguous). */
const permuted = (device: Device, seed: number, lo = -2, hi = 2) => random(device, [7, 5, 3], seed, lo, hi).permute([2, 1, 0]);

const F32 = { rtol: 2e-6, atol: 1e-6 };
const F16 = { rtol: 2 ** -9, atol: 2 ** -14 };

describe.skipIf(!gpu)('elementwise ops: GPU matches CPU', () => {
  const binaries = { add, sub, mul, div } as const;

  it.each(Object.keys(binaries) as (keyof typeof binaries)[])(
    '%s broadcasts strided views, scalars and f16',
    async (name) => {
      const op = binaries[name];
      const seed = freshSeed();
      await expectNoGpuErrors(gpu!, async () => {
        // [3, 5, 7] permuted view with a [5, 1] operand; divisor kept away from 0.
        await expectGpuMatchesCpu(
          gpu!,
          (d) => [permuted(d, seed), random(d, [5, 1], seed + 1, 0.5, 2)],
          (a, b) => op(a!, b!),
          F32,
          `${name} [3,5,7]·[5,1] seed ${seed}`,
        );
        await expectGpuMatchesCpu(gpu!, (d) => [random(d, [4, 1, 6], seed + 2, 0.5, 2)], (a) => op(1.5, a!), F32, `${name} scalar a, seed ${seed}`);
        await expectGpuMatchesCpu(gpu!, (d) => [random(d, [17], seed + 3)], (a) => op(a!, -0.75), F32, `${name} scalar b, seed ${seed}`);
        await expectGpuMatchesCpu(
          gpu!,
          (d) => [random(d, [3, 5, 7], seed + 4, -2, 2, 'f16'), random(d, [7], seed + 5, 0.5, 2, 'f16')],
          (a, b) => op(a!, b!),
          F16,
          `${name} f16 seed ${seed}`,
        );
        // Several workgroups (256 output words each) with a partial last one, dense and broadcast inputs.
        await expectGpuMatchesCpu(
          gpu!,
          (d) => [random(d, [3, 1025], seed + 8, 0.5, 2), random(d, [1025], seed + 9, 0.5, 2)],
          (a, b) => op(a!, b!),
          F32,
          `${name} [3,1025]·[1025] seed ${seed}`,
        );
        await expectGpuMatchesCpu(
          gpu!,
          (d) => [random(d, [3, 1025], seed + 10, 0.5, 2, 'f16'), random(d, [3, 1025], seed + 11, 0.5, 2, 'f16')],
          (a, b) => op(a!, b!),
          F16,
          `${name} f16 [3,1025] seed ${seed}`,
        );
        // Mixed f16 · f32 promotes to f32, narrowed (offset) view as input.
        await expectGpuMatchesCpu(
          gpu!,
          (d) => [random(d, [3, 9], seed + 6, -2, 2, 'f16').narrow(1, 2, 5), random(d, [3, 5], seed + 7, 0.5, 2)],
          (a, b) => op(a!, b!),
          F32,
          `${name} f16·f32 seed ${seed}`,
        );
      });
    },
  );

  it('unary math matches on odd shapes and strided views', async () => {
    const seed = freshSeed();
    const unaries: [string, (x: Tensor) => Tensor, number, number][] = [
      ['neg', neg, -3, 3],
      ['exp', exp, -4, 4],
      ['log', log, 0.01, 5],
      ['sqrt', sqrt, 0, 5],
      ['relu', relu, -2, 2],
      ['gelu', gelu, -6, 6],
      ['scale', (x) => scale(x, -1.75), -2, 2],
    ];
    await expectNoGpuErrors(gpu!, async () => {
      for (const [name, op, lo, hi] of unaries) {
        await expectGpuMatchesCpu(gpu!, (d) => [permuted(d, seed, lo, hi)], (x) => op(x!), { rtol: 4e-6, atol: 2e-6 }, `${name} seed ${seed}`);
        await expectGpuMatchesCpu(gpu!, (d) => [random(d, [3, 5, 7], seed + 1, lo, hi, 'f16')], (x) => op(x!), F16, `${name} f16 seed ${seed}`);
      }
    });
  });

  it('where, maskedFill, cast and copy match', async () => {
    const seed = freshSeed();
    await expectNoGpuErrors(gpu!, async () => {
      await expectGpuMatchesCpu(
        gpu!,
        (d) => [mask(d, [3, 1, 7], seed), permuted(d, seed + 1), random(d, [5, 1], seed + 2)],
        (c, a, b) => where(c!, a!, b!),
        F32,
        `where seed ${seed}`,
      );
      await expectGpuMatchesCpu(gpu!, (d) => [mask(d, [5, 7], seed + 3)], (c) => where(c!, 2.5, -1), F32, `where scalars seed ${seed}`);
      await expectGpuMatchesCpu(
        gpu!,
        (d) => [permuted(d, seed + 4), mask(d, [5, 1], seed + 5)],
        (x, m) => maskedFill(x!, m!, Number.NEGATIVE_INFINITY),
        F32,
        `maskedFill seed ${seed}`,
      );
      // Beyond ±65504 rounds to ±inf in f16 on both devices.
      await expectGpuMatchesCpu(gpu!, (d) => [permuted(d, seed + 6, -70000, 70000)], (x) => cast(x!, 'f16'), F16, `cast f16 seed ${seed}`);
      await expectGpuMatchesCpu(
        gpu!,
        (d) => [fromValues(d, 'f32', [65519, 65520, -1e9, Number.POSITIVE_INFINITY, Number.NaN, 6e-8, -0, 1 / 3], [8])],
        (x) => cast(x!, 'f16'),
        { rtol: 0, atol: 0 },
        'cast f16 special values',
      );
      await expectGpuMatchesCpu(gpu!, (d) => [random(d, [3, 5, 7], seed + 7, -2, 2, 'f16')], (x) => cast(x!, 'f32'), { rtol: 0, atol: 0 }, `cast f32 seed ${seed}`);
      await expectGpuMatchesCpu(gpu!, (d) => [mask(d, [3, 5, 7], seed + 8).permute([2, 0, 1])], (x) => cast(x!, 'f32'), { rtol: 0, atol: 0 }, `cast bool seed ${seed}`);
      await expectGpuMatchesCpu(gpu!, (d) => [mask(d, [3, 5, 7], seed + 9).permute([2, 0, 1])], (x) => copy(x!), { rtol: 0, atol: 0 }, `copy bool seed ${seed}`);
      await expectGpuMatchesCpu(gpu!, (d) => [random(d, [3, 5, 7], seed + 10, -2, 2, 'f16').transpose(0, 2)], (x) => copy(x!), { rtol: 0, atol: 0 }, `copy f16 seed ${seed}`);
    });
  });
});

describe.skipIf(!gpu)('elementwise gradients: GPU matches CPU', () => {
  it('for every op, with broadcasting, scalars, strided views and f16', async () => {
    const seed = freshSeed();
    const cases: [string, (d: Device) => Tensor[], (...t: Tensor[]) => Tensor][] = [
      ['add', (d) => [permuted(d, seed), random(d, [5, 1], seed + 1)], (a, b) => add(a!, b!)],
      ['sub', (d) => [random(d, [7], seed), permuted(d, seed + 1)], (a, b) => sub(a!, b!)],
      ['mul', (d) => [permuted(d, seed), random(d, [3, 1, 7], seed + 1)], (a, b) => mul(a!, b!)],
      ['div', (d) => [permuted(d, seed), random(d, [5, 7], seed + 1, 0.5, 2)], (a, b) => div(a!, b!)],
      ['div scalar', (d) => [random(d, [5, 7], seed, 0.5, 2)], (a) => div(3, a!)],
      ['neg', (d) => [permuted(d, seed)], (a) => neg(a!)],
      ['exp', (d) => [permuted(d, seed)], (a) => exp(a!)],
      ['log', (d) => [permuted(d, seed, 0.1, 3)], (a) => log(a!)],
      ['sqrt', (d) => [permuted(d, seed, 0.1, 3)], (a) => sqrt(a!)],
      ['relu', (d) => [permuted(d, seed)], (a) => relu(a!)],
      ['gelu', (d) => [permuted(d, seed, -5, 5)], (a) => gelu(a!)],
      ['scale', (d) => [permuted(d, seed)], (a) => scale(a!, 0.3)],
      ['copy', (d) => [permuted(d, seed)], (a) => copy(a!)],
      ['where', (d) => [mask(d, [3, 5, 7], seed), permuted(d, seed + 1), random(d, [7], seed + 2)], (c, a, b) => where(c!, a!, b!)],
      ['maskedFill', (d) => [permuted(d, seed), mask(d, [5, 1], seed + 1)], (a, m) => maskedFill(a!, m!, -1)],
      ['cast f32 → f16 → f32', (d) => [permuted(d, seed)], (a) => cast(cast(a!, 'f16'), 'f32')],
    ];
    await expectNoGpuErrors(gpu!, async () => {
      for (const [name, make, op] of cases) {
        const tolerance = name.startsWith('cast') ? F16 : { rtol: 1e-5, atol: 1e-6 };
        await expectGpuGradientsMatchCpu(gpu!, make, op, tolerance, seed, name);
      }
      await expectGpuGradientsMatchCpu(
        gpu!,
        (d) => [random(d, [3, 5, 7], seed, -2, 2, 'f16'), random(d, [7], seed + 1, -2, 2, 'f16')],
        (a, b) => mul(a!, b!),
        F16,
        seed,
        'mul f16',
      );
    });
  });
});

describe('elementwise gradients match float64 central differences', () => {
  const values = (count: number, seed: number, lo = -2, hi = 2) => randomValues(count, seed, lo, hi);

  it('binary ops with broadcasting and scalars', () => {
    const seed = freshSeed();
    const a = { values: values(15, seed), shape: [3, 5] };
    const b = { values: values(5, seed + 1, 0.5, 2), shape: [5] };
    const c = { values: values(3, seed + 2, 0.5, 2), shape: [3, 1] };
    const cases: [string, (...x: Tensor[]) => Tensor, typeof a[]][] = [
      ['add', (x, y) => add(x!, y!), [a, b]],
      ['sub', (x, y) => sub(x!, y!), [c, a]],
      ['mul', (x, y) => mul(x!, y!), [a, c]],
      ['div', (x, y) => div(x!, y!), [a, b]],
      ['div scalar numerator', (x) => div(2, x!), [b]],
      ['mul scalar', (x) => mul(x!, -3), [a]],
      ['x·x (one input twice)', (x) => mul(x!, x!), [a]],
    ];
    for (const [name, fn, inputs] of cases) {
      const check = checkGradients(fn, inputs, seed);
      expect(check.maxError, `${name} seed ${seed}: ${check.where}`).toBeLessThan(1e-6);
    }
  });

  it('unary ops, where, maskedFill and cast', () => {
    const seed = freshSeed();
    const x = { values: values(12, seed), shape: [4, 3] };
    const positive = { values: values(12, seed + 1, 0.2, 3), shape: [4, 3] };
    const condition = fromValues(cpuDevice(), 'bool', [1, 0, 1], [3]);
    const rowMask = fromValues(cpuDevice(), 'bool', [0, 1, 1, 0], [4, 1]);
    const cases: [string, (...t: Tensor[]) => Tensor, (typeof x)[]][] = [
      ['neg', (t) => neg(t!), [x]],
      ['exp', (t) => exp(t!), [x]],
      ['log', (t) => log(t!), [positive]],
      ['sqrt', (t) => sqrt(t!), [positive]],
      ['relu', (t) => relu(t!), [x]],
      ['gelu', (t) => gelu(t!), [x]],
      ['scale', (t) => scale(t!, 0.3), [x]],
      ['copy of a transposed view', (t) => copy(t!.transpose(0, 1)), [x]],
      ['where', (t, u) => where(condition, t!, u!), [x, { values: values(3, seed + 2), shape: [3] }]],
      ['maskedFill', (t) => maskedFill(t!, rowMask, 7), [x]],
    ];
    for (const [name, fn, inputs] of cases) {
      const check = checkGradients(fn, inputs, seed);
      expect(check.maxError, `${name} seed ${seed}: ${check.where}`).toBeLessThan(1e-6);
    }
  });

  it('erf is exact to float64 rounding at known values', () => {
    // Reference values from high-precision tables (erf(0.5), erf(1), erf(2), erf(3.5)).
    expect(erf(0.5)).toBeCloseTo(0.5204998778130465, 15);
    expect(erf(1)).toBeCloseTo(0.8427007929497149, 15);
    expect(erf(-2)).toBeCloseTo(-0.9953222650189527, 15);
    expect(erf(3.5)).toBeCloseTo(0.9999992569016276, 15);
  });
});

describe('elementwise typed errors', () => {
  const device = cpuDevice();
  const x = fromValues(device, 'f32', [1, 2, 3, 4, 5, 6], [2, 3]);

  it('names shapes that cannot broadcast', () => {
    const y = fromValues(device, 'f32', [1, 2], [2]);
    expect(() => add(x, y)).toThrow(ShapeError);
    expect(() => add(x, y)).toThrow(/\[2, 3\].*\[2\]/);
  });

  it('rejects bad operands, dtypes, devices and disposed tensors', () => {
    expect(() => add(1, 2)).toThrow(InvalidArgumentError);
    expect(() => mul(x, [1, 2] as unknown as number)).toThrow(InvalidArgumentError);
    const flags = fromValues(device, 'bool', [1, 0, 1], [3]);
    expect(() => exp(flags)).toThrow(DTypeError);
    expect(() => where(x, 1, 2)).toThrow(DTypeError);
    expect(() => maskedFill(x, flags.reshape([1, 3]).expand([4, 3]), 0)).toThrow(ShapeError);
    expect(() => scale(x, Number.NaN)).toThrow(InvalidArgumentError);
    const gone = fromValues(device, 'f32', [1], [1]);
    gone.dispose();
    expect(() => add(x, gone)).toThrow(DisposedTensorError);
  });

  it.skipIf(!gpu)('refuses tensors on different devices', () => {
    const onGpu = fromValues(gpu!, 'f32', [1, 2, 3], [3]);
    expect(() => add(x, onGpu)).toThrow(DeviceMismatchError);
    onGpu.dispose();
  });
});
