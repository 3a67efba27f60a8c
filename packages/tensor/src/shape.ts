import { ShapeError } from './errors';

export type Shape = readonly number[];

export function numel(shape: Shape): number {
  return shape.reduce((product, size) => product * size, 1);
}

/** Row-major (C-contiguous) strides of a shape, in elements. */
export function contiguousStrides(shape: Shape): number[] {
  const strides = new Array<number>(shape.length);
  let stride = 1;
  for (let dim = shape.length - 1; dim >= 0; dim--) {
    strides[dim] = stride;
    stride *= shape[dim]!;
  }
  return strides;
}

export function assertShape(shape: Shape, what = 'shape'): void {
  if (!Array.isArray(shape) || shape.some((size) => !Number.isInteger(size) || size < 0)) {
    throw new ShapeError(`${what} must be a list of non-negative integers, got ${JSON.stringify(shape)}`);
  }
}

/** A possibly negative dimension index, checked and made non-negative. */
export function normalizeDim(dim: number, rank: number, what = 'dim'): number {
  const normalized = dim < 0 ? dim + rank : dim;
  if (!Number.isInteger(dim) || normalized < 0 || normalized >= Math.max(rank, 1)) {
    throw new ShapeError(`${what} ${dim} is out of range for a tensor of rank ${rank} (use -${rank}..${rank - 1})`);
  }
  return normalized;
}

/** PyTorch/NumPy broadcasting of two shapes. */
export function broadcastShapes(a: Shape, b: Shape): number[] {
  const rank = Math.max(a.length, b.length);
  const out = new Array<number>(rank);
  for (let i = 0; i < rank; i++) {
    const x = a[a.length - rank + i] ?? 1;
    const y = b[b.length - rank + i] ?? 1;
    if (x !== y && x !== 1 && y !== 1) {
      throw new ShapeError(
        `shapes [${a.join(', ')}] and [${b.join(', ')}] cannot broadcast: dimension ${i} is ${x} vs ${y} (sizes must match or be 1)`,
      );
    }
    out[i] = x === 1 ? y : x;
  }
  return out;
}

export function sameShape(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((size, i) => size === b[i]);
}

export const formatShape = (shape: Shape): string => `[${shape.join(', ')}]`;
