import { noGrad } from '../autograd';
import { numel } from '../shape';
import type { Tensor } from '../tensor';
import { elementwise } from './elementwise';

/**
 * Row kernels (sum, softmax, layer norm) work on a dense f32 matrix [rows, cols]: `x.permute(order)` copied
 * to row-major f32 (no copy when it already is). On the CPU float64 data stays float64.
 */
export interface Rows {
  /** Dense, offset 0, f32 (or float64 data on the CPU); owned by the caller. */
  readonly matrix: Tensor;
  readonly rows: number;
  readonly cols: number;
  /** Shape of x.permute(order). */
  readonly shape: readonly number[];
}

export function asRows(x: Tensor, order: readonly number[], reducedDims: number): Rows {
  return noGrad(() => {
    const permuted = x.permute(order);
    const shape = permuted.shape;
    const cols = numel(shape.slice(shape.length - reducedDims));
    const rows = numel(shape.slice(0, shape.length - reducedDims));
    const dense = permuted.dtype === 'f32' && permuted.isContiguous() && permuted.offset === 0;
    const matrix = dense ? permuted : elementwise('identity', [permuted], 'f32');
    if (!dense) permuted.dispose();
    return { matrix, rows, cols, shape };
  });
}

/** The permutation that moves `dims` (sorted) to the end, keeping the order of the others. */
export function orderWithLast(rank: number, dims: readonly number[]): number[] {
  const kept = Array.from({ length: rank }, (_, dim) => dim).filter((dim) => !dims.includes(dim));
  return [...kept, ...dims];
}

export function inverseOrder(order: readonly number[]): number[] {
  const inverse = new Array<number>(order.length);
  order.forEach((dim, i) => (inverse[dim] = i));
  return inverse;
}
