import { contiguousStrides, formatShape, ShapeError, type Tensor } from '@webattn/tensor';

/**
 * A plain array with a shape: what the float64 reference reads, so it works for anyone's tests without our
 * Tensor. `strides` and `offset` (in elements) default to row-major from 0. `dtype` matters for masks only:
 * 'bool' (or a Uint8Array without a dtype) is a bool mask (nonzero = may attend), anything else is additive.
 */
export interface HostTensor {
  readonly data: ArrayLike<number>;
  readonly shape: readonly number[];
  readonly strides?: readonly number[];
  readonly offset?: number;
  readonly dtype?: 'bool' | 'f16' | 'f32' | 'f64';
}

/** Whether a host mask is a bool mask. */
export function isBoolHostTensor(t: HostTensor): boolean {
  return t.dtype === 'bool' || (t.dtype === undefined && t.data instanceof Uint8Array);
}

export function hostStrides(t: HostTensor): readonly number[] {
  return t.strides ?? contiguousStrides(t.shape);
}

/** Checks that every element the shape and strides address lies inside `data`. */
export function assertHostTensor(name: string, t: HostTensor): void {
  const strides = hostStrides(t);
  if (strides.length !== t.shape.length) {
    throw new ShapeError(`${name}: ${strides.length} strides for shape ${formatShape(t.shape)}`);
  }
  const offset = t.offset ?? 0;
  let last = offset;
  t.shape.forEach((size, axis) => (last += size > 0 ? (size - 1) * strides[axis]! : 0));
  if (t.shape.some((size) => size === 0)) return;
  if (offset < 0 || last >= t.data.length) {
    throw new ShapeError(
      `${name} ${formatShape(t.shape)} addresses element ${last} but its data has ${t.data.length} elements`,
    );
  }
}

/** A host view of a CPU tensor (no copy). Throws for GPU tensors (read those with `hostTensorFrom`). */
export function hostViewOf(t: Tensor): HostTensor {
  return { data: t.data, shape: t.shape, strides: t.strides, offset: t.offset, dtype: t.dtype };
}

/** A contiguous host copy of a tensor on any device (GPU tensors are read back). */
export async function hostTensorFrom(t: Tensor): Promise<HostTensor> {
  return { data: await t.toArray(), shape: t.shape, dtype: t.dtype };
}
