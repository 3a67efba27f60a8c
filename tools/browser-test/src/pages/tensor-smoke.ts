// Page module for tensor-smoke.test.ts: opens a WebGPU device through navigator.gpu, makes a strided view of a
// random tensor and copies it with contiguous() (a WGSL kernel), multiplies two matrices with matmul, and reports
// the numbers for the test to check against the CPU.
import { createDevice, matmul, tensor } from '@webattn/tensor';
import { randomValues } from '@webattn/tensor/testing';
import { reportResult } from '../page-result';

export interface TensorSmokeResult {
  readonly seed: number;
  readonly kind: 'gpu' | 'cpu';
  readonly reason: string;
  readonly vendor: string;
  readonly architecture: string;
  readonly features: readonly string[];
  readonly shape: readonly number[];
  readonly order: readonly number[];
  readonly input: readonly number[];
  readonly viewWasContiguous: boolean;
  readonly outputShape: readonly number[];
  readonly output: readonly number[];
  /** matmul of a [m, k] by a [k, n] matrix (row-major values). */
  readonly matmul: { readonly m: number; readonly k: number; readonly n: number; readonly a: number[]; readonly b: number[]; readonly product: number[] };
}

reportResult(async (): Promise<TensorSmokeResult> => {
  const seed = Number(new URL(location.href).searchParams.get('seed') ?? '1');
  const device = await createDevice({ requireGpu: true });
  try {
    const shape = [3, 5, 7];
    const order = [2, 0, 1];
    const input = randomValues(3 * 5 * 7, seed);
    const view = tensor(device, input, shape).permute(order);
    const copy = view.contiguous();
    const output = await copy.toArray();
    const [m, k, n] = [9, 40, 17];
    const a = randomValues(m * k, seed + 1);
    const b = randomValues(k * n, seed + 2);
    const product = await matmul(tensor(device, a, [m, k]), tensor(device, b, [k, n])).toArray();
    await device.sync();
    return {
      seed,
      kind: device.kind,
      reason: device.info.reason,
      vendor: device.info.vendor,
      architecture: device.info.architecture,
      features: [...device.caps.features],
      shape,
      order,
      input: Array.from(input),
      viewWasContiguous: view.isContiguous(),
      outputShape: [...copy.shape],
      output: Array.from(output),
      matmul: { m, k, n, a: Array.from(a), b: Array.from(b), product: Array.from(product) },
    };
  } finally {
    device.destroy();
  }
});
