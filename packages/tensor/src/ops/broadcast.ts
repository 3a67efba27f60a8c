import { ShapeError } from '../errors';
import { broadcastShapes, formatShape, sameShape, type Shape } from '../shape';
import type { Tensor } from '../tensor';
import { sum } from './reduce';

/** The broadcast shape of several shapes (PyTorch rules), naming the op on failure. */
export function broadcastAll(op: string, shapes: readonly Shape[]): number[] {
  try {
    return shapes.reduce<number[]>((out, shape) => broadcastShapes(out, shape), []);
  } catch (error) {
    if (error instanceof ShapeError) throw new ShapeError(`${op}: ${error.message}`);
    throw error;
  }
}

/** Strides that read `shape`-sized output positions from a tensor broadcast to it (0 along broadcast dims). */
export function broadcastStrides(x: { shape: Shape; strides: Shape }, shape: Shape): number[] {
  const lead = shape.length - x.shape.length;
  return shape.map((size, dim) => {
    if (dim < lead) return 0;
    const own = x.shape[dim - lead]!;
    return own === 1 && size !== 1 ? 0 : x.strides[dim - lead]!;
  });
}

/**
 * Sums a broadcast gradient back to the shape of the input it flowed from (the backward of broadcasting).
 * Returns `grad` itself when nothing was broadcast.
 */
export function reduceToShape(grad: Tensor, shape: Shape): Tensor {
  if (sameShape(grad.shape, shape)) return grad;
  const lead = grad.rank - shape.length;
  if (lead < 0) throw new ShapeError(`cannot reduce gradient ${formatShape(grad.shape)} to ${formatShape(shape)}`);
  const dims: number[] = [];
  for (let dim = 0; dim < grad.rank; dim++) {
    if (dim < lead || (shape[dim - lead] === 1 && grad.shape[dim] !== 1)) dims.push(dim);
  }
  const summed = sum(grad, dims, true);
  const reshaped = summed.reshape(shape);
  summed.dispose();
  return reshaped;
}
