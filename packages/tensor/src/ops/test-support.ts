/**
 * Helpers for the ops tests (not exported from the package): float64 CPU tensors for gradient checks, central
 * differences, and output poisoning for GPU tests.
 */
import { cpuDevice, type Device } from '../device';
import type { DType } from '../dtype';
import { Storage, type CpuData } from '../storage';
import { Tensor, fromValues } from '../tensor';
import { numel } from '../shape';
import { randomValues } from '../testing';
import { noGrad } from '../autograd';
import { elementwise } from './elementwise';

/**
 * A CPU tensor whose storage is a Float64Array. The CPU kernels allocate outputs of their inputs' array type,
 * so every op (and every backward, which is made of ops) then runs the very same code in float64.
 */
export function float64Tensor(values: ArrayLike<number>, shape: readonly number[], requiresGrad = false): Tensor {
  const t = new Tensor(Storage.onCpu(cpuDevice(), 'f32', Float64Array.from(values) as unknown as CpuData), shape);
  t.requiresGrad = requiresGrad;
  return t;
}

/** Row-major values of a CPU tensor, in its storage's precision. */
export function valuesOf(t: Tensor): Float64Array {
  return noGrad(() => {
    const dense = elementwise('identity', [t], t.dtype === 'bool' ? 'bool' : 'f32');
    const out = Float64Array.from(dense.data);
    dense.dispose();
    return out;
  });
}

export interface GradientCheck {
  /** max over inputs and elements of |analytic − numeric| / (1 + |numeric|) */
  readonly maxError: number;
  readonly where: string;
}

/**
 * Compares the analytic gradients of loss = Σ fn(x…) · w (w random) with central differences, all in float64.
 * With step h = 1e-6 the central difference has truncation error O(h²·f''') ≈ 1e-12 and rounding error
 * ≈ 1e-16/h = 1e-10 for O(1) values, so a correct backward agrees to ~1e-9; tests allow 1e-6.
 */
export function checkGradients(
  fn: (...inputs: Tensor[]) => Tensor,
  inputs: readonly { values: ArrayLike<number>; shape: readonly number[] }[],
  seed: number,
  step = 1e-6,
): GradientCheck {
  const leaves = inputs.map(({ values, shape }) => float64Tensor(values, shape, true));
  const out = fn(...leaves);
  const weights = Float64Array.from(randomValues(out.size, seed ^ 0x9e3779b9, -1, 1));
  out.backward(float64Tensor(weights, out.shape));
  const loss = (values: ArrayLike<number>[]): number =>
    noGrad(() => {
      const y = valuesOf(fn(...values.map((v, i) => float64Tensor(v, inputs[i]!.shape))));
      let total = 0;
      for (let i = 0; i < y.length; i++) total += y[i]! * weights[i]!;
      return total;
    });
  let maxError = 0;
  let where = 'nowhere';
  inputs.forEach((input, which) => {
    const analytic = leaves[which]!.grad ? valuesOf(leaves[which]!.grad!) : new Float64Array(numel(input.shape));
    const base = inputs.map((x) => Float64Array.from(x.values));
    for (let j = 0; j < numel(input.shape); j++) {
      const original = base[which]![j]!;
      base[which]![j] = original + step;
      const plus = loss(base);
      base[which]![j] = original - step;
      const minus = loss(base);
      base[which]![j] = original;
      const numeric = (plus - minus) / (2 * step);
      const error = Math.abs(analytic[j]! - numeric) / (1 + Math.abs(numeric));
      if (!(error <= maxError)) {
        maxError = Number.isNaN(error) ? Number.POSITIVE_INFINITY : error;
        where = `input ${which} element ${j}: analytic ${analytic[j]} vs numeric ${numeric}`;
      }
    }
  });
  return { maxError, where };
}

/**
 * Fills pooled buffers of these shapes with NaN and releases them, so the next outputs of the same sizes start
 * as garbage rather than zeros (a kernel that skips elements then fails the test).
 */
export function poison(device: Device, shapes: readonly (readonly number[])[], dtype: DType = 'f32'): void {
  if (!device.isGpu) return;
  // Several per shape: inputs made after this take some of them from the same size bucket.
  const tensors = shapes.flatMap((shape) =>
    Array.from({ length: 8 }, () => fromValues(device, dtype, new Float32Array(numel(shape)).fill(Number.NaN), shape)),
  );
  device.submit();
  for (const t of tensors) t.dispose();
  device.submit();
}

/** Random values as a tensor on `device` plus the same values (rounded to dtype) on the CPU. */
export function randomPair(
  device: Device,
  shape: readonly number[],
  seed: number,
  options: { dtype?: DType; lo?: number; hi?: number } = {},
): { gpu: Tensor; cpu: Tensor; values: Float32Array } {
  const values = randomValues(numel(shape), seed, options.lo ?? -1, options.hi ?? 1);
  const dtype = options.dtype ?? 'f32';
  return { gpu: fromValues(device, dtype, values, shape), cpu: fromValues(cpuDevice(), dtype, values, shape), values };
}

/** Index and values of the worst |actual − expected| > atol + rtol·|expected| (null when all are within). */
export function worstMismatch(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  rtol: number,
  atol: number,
): string | null {
  if (actual.length !== expected.length) return `length ${actual.length} vs ${expected.length}`;
  let worst = 0;
  let message: string | null = null;
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    if ((Number.isNaN(e) && Number.isNaN(a)) || a === e) continue;
    const excess = Math.abs(a - e) / (atol + rtol * Math.abs(e));
    if (!(excess <= 1) && !(excess <= worst)) {
      worst = Number.isNaN(excess) ? Number.POSITIVE_INFINITY : excess;
      message = `element ${i}: got ${a}, expected ${e}`;
    }
  }
  return message;
}

/**
 * Runs `op` on the GPU and on the CPU (inputs built by `make` on each device) and expects the results to agree
 * within atol + rtol·|cpu|. GPU outputs are poisoned first.
 */
export async function expectGpuMatchesCpu(
  gpu: Device,
  make: (device: Device) => Tensor[],
  op: (...inputs: Tensor[]) => Tensor,
  tolerance: { rtol: number; atol: number },
  context: string,
): Promise<void> {
  const cpuResult = op(...make(cpuDevice()));
  poison(gpu, [cpuResult.shape], cpuResult.dtype);
  const gpuResult = op(...make(gpu));
  const label = `${context} (replay with WEBATTN_SEED)`;
  if (gpuResult.dtype !== cpuResult.dtype || gpuResult.shape.join() !== cpuResult.shape.join()) {
    throw new Error(`${label}: GPU gave ${gpuResult.toString()}, CPU ${cpuResult.toString()}`);
  }
  const mismatch = worstMismatch(await gpuResult.toArray(), await cpuResult.toArray(), tolerance.rtol, tolerance.atol);
  if (mismatch) throw new Error(`${label}: ${mismatch}`);
  gpuResult.dispose();
}

/**
 * Builds leaves with `make` on the GPU and on the CPU, backpropagates the same random output gradient through
 * `op` on each, and expects every leaf gradient to agree within atol + rtol·|cpu|.
 */
export async function expectGpuGradientsMatchCpu(
  gpu: Device,
  make: (device: Device) => Tensor[],
  op: (...inputs: Tensor[]) => Tensor,
  tolerance: { rtol: number; atol: number },
  seed: number,
  context: string,
): Promise<void> {
  const gradients = async (device: Device) => {
    const leaves = make(device);
    for (const t of leaves) if (t.dtype !== 'bool') t.requiresGrad = true;
    const out = op(...leaves);
    const upstream = randomValues(out.size, seed ^ 0x5bd1e995, -1, 1);
    out.backward(fromValues(device, out.dtype, upstream, out.shape));
    return Promise.all(leaves.map((t) => (t.grad ? t.grad.toArray() : null)));
  };
  const onCpu = await gradients(cpuDevice());
  const onGpu = await gradients(gpu);
  onCpu.forEach((expected, i) => {
    const actual = onGpu[i];
    if (!expected || !actual) {
      if (expected !== actual) throw new Error(`${context}: input ${i} has a gradient on one device only`);
      return;
    }
    const mismatch = worstMismatch(actual, expected, tolerance.rtol, tolerance.atol);
    if (mismatch) throw new Error(`${context} (seed ${seed}): gradient of input ${i}: ${mismatch}`);
  });
}
