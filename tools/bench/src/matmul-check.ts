import { matmul, tensor, type Device } from '@webattn/tensor';
import { freshSeed, randomValues } from '@webattn/tensor/testing';

export interface MatmulCheck {
  /** Where @webattn/tensor's matmul ran: 'gpu' (its WGSL kernel) or 'cpu' (the CPU device). */
  readonly where: 'gpu' | 'cpu';
  readonly seed: number;
  readonly shape: readonly [number, number, number];
  /** Largest |result − float64 reference|. */
  readonly maxAbsError: number;
  /** Error of a float32 CPU product against the same float64 reference. */
  readonly float32ReferenceError: number;
  readonly tolerance: number;
  readonly ok: boolean;
}

/** A · B in float64 (the reference) and in float32 summed in order (a same-precision reference). */
function cpuProducts(a: Float32Array, b: Float32Array, m: number, k: number, n: number) {
  const exact = new Float64Array(m * n);
  const single = new Float32Array(m * n);
  let largestAbsSum = 0;
  for (let row = 0; row < m; row++) {
    for (let column = 0; column < n; column++) {
      let sum = 0;
      let sum32 = 0;
      let absSum = 0;
      for (let index = 0; index < k; index++) {
        const product = a[row * k + index]! * b[index * n + column]!;
        sum += product;
        sum32 = Math.fround(sum32 + Math.fround(product));
        absSum += Math.abs(product);
      }
      exact[row * n + column] = sum;
      single[row * n + column] = sum32;
      largestAbsSum = Math.max(largestAbsSum, absSum);
    }
  }
  return { exact, single, largestAbsSum };
}

function maxError(values: ArrayLike<number>, exact: Float64Array): number {
  let largest = 0;
  for (let i = 0; i < exact.length; i++) {
    const error = Math.abs(values[i]! - exact[i]!);
    largest = Number.isNaN(error) ? Number.POSITIVE_INFINITY : Math.max(largest, error);
  }
  return largest;
}

/**
 * Multiplies random m×k and k×n matrices with @webattn/tensor's `matmul` on the device and compares with
 * float64 on the CPU. Tolerance: 4× the float32 CPU product's own error plus 2⁻²⁴ of the largest Σ|a·b| (one rounding).
 */
export async function checkMatmul(device: Device, m: number, k: number, n: number, seed = freshSeed()): Promise<MatmulCheck> {
  const a = randomValues(m * k, seed);
  const b = randomValues(k * n, seed + 1);
  const { exact, single, largestAbsSum } = cpuProducts(a, b, m, k, n);
  const left = tensor(device, a, [m, k]);
  const right = tensor(device, b, [k, n]);
  const product = matmul(left, right);
  const result = await product.toArray();
  await device.sync();
  for (const t of [left, right, product]) t.dispose();
  const float32ReferenceError = maxError(single, exact);
  const tolerance = 4 * float32ReferenceError + 2 ** -24 * largestAbsSum;
  const maxAbsError = maxError(result, exact);
  return {
    where: device.isGpu ? 'gpu' : 'cpu',
    seed,
    shape: [m, k, n],
    maxAbsError,
    float32ReferenceError,
    tolerance,
    ok: maxAbsError <= tolerance,
  };
}
