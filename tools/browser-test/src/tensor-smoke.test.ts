import { fileURLToPath } from 'node:url';
import { freshSeed } from '@webattn/tensor/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { browserAvailable, launchBrowser, type LaunchedBrowser } from './launch-browser';
import type { TensorSmokeResult } from './pages/tensor-smoke';
import { runPage } from './run-page';
import { servePage, type ServedPage } from './serve-page';

const haveChromium = browserAvailable();

/** CPU permute of a contiguous row-major array: the expected contents of `permute(order).contiguous()`. */
function permuteOnCpu(input: readonly number[], shape: readonly number[], order: readonly number[]): number[] {
  const strides = shape.map((_, axis) => shape.slice(axis + 1).reduce((product, size) => product * size, 1));
  const outShape = order.map((axis) => shape[axis]!);
  const out: number[] = [];
  const index = new Array<number>(outShape.length).fill(0);
  for (let flat = 0; flat < input.length; flat++) {
    out.push(input[index.reduce((offset, value, axis) => offset + value * strides[order[axis]!]!, 0)]!);
    for (let axis = outShape.length - 1; axis >= 0; axis--) {
      if (++index[axis]! < outShape[axis]!) break;
      index[axis] = 0;
    }
  }
  return out;
}

/** Largest |product − float64 product| and the float32-rounding scale Σ|a·b| it should stay within. */
function matmulError(run: TensorSmokeResult['matmul']): { error: number; tolerance: number } {
  let error = 0;
  let largestAbsSum = 0;
  for (let row = 0; row < run.m; row++) {
    for (let column = 0; column < run.n; column++) {
      let exact = 0;
      let absSum = 0;
      for (let index = 0; index < run.k; index++) {
        const term = run.a[row * run.k + index]! * run.b[index * run.n + column]!;
        exact += term;
        absSum += Math.abs(term);
      }
      const difference = Math.abs(run.product[row * run.n + column]! - exact);
      error = Number.isNaN(difference) ? Number.POSITIVE_INFINITY : Math.max(error, difference);
      largestAbsSum = Math.max(largestAbsSum, absSum);
    }
  }
  // Summing k float32 products can lose up to about k·2⁻²⁴ of Σ|a·b| in the worst case.
  return { error, tolerance: run.k * 2 ** -24 * largestAbsSum };
}

describe.skipIf(!haveChromium)('@webattn/tensor in headless Chromium (WebGPU on SwiftShader)', () => {
  let browser: LaunchedBrowser;
  let served: ServedPage;
  beforeAll(async () => {
    served = await servePage({ entry: fileURLToPath(new URL('./pages/tensor-smoke.ts', import.meta.url)) });
    browser = await launchBrowser();
  });
  afterAll(async () => {
    await browser?.close();
    await served?.close();
  });

  it('copies a permuted view and multiplies matrices with WGSL kernels, on a real adapter, without console errors', async () => {
    const seed = freshSeed();
    const run = await runPage<TensorSmokeResult>(browser.context, `${served.url}?seed=${seed}`);
    const result = run.result;
    const context = `seed ${seed} (replay with WEBATTN_SEED=${seed}); adapter ${result.vendor} ${result.architecture}`;
    expect(result.kind, `${context}: ${result.reason}`).toBe('gpu');
    expect(result.vendor, context).not.toBe('');
    expect(result.viewWasContiguous, context).toBe(false);
    expect(result.outputShape, context).toEqual(result.order.map((axis) => result.shape[axis]));
    // A copy is exact: every element must match bit for bit, and none is a leftover of an uninitialised buffer.
    expect(result.output, context).toEqual(permuteOnCpu(result.input, result.shape, result.order));
    const { m, k, n, product } = result.matmul;
    expect(product.length, context).toBe(m * n);
    const { error, tolerance } = matmulError(result.matmul);
    expect(error, `${context}: matmul ${m}x${k} @ ${k}x${n}`).toBeLessThanOrEqual(tolerance);
    expect(run.consoleErrors, context).toEqual([]);
  });
});
