import {
  DTypeError,
  DeviceMismatchError,
  ShapeError,
  bytesPerElement,
  formatShape,
  roundToHalf,
  sameShape,
  toHalfBits,
  type Tensor,
} from '@webattn/tensor';

/** Values held on the host: what state dicts loaded from files, JSON or PyTorch exports provide. */
export interface HostTensor {
  readonly shape: readonly number[];
  readonly data: ArrayLike<number>;
}

/**
 * Writes `source` into `target`'s memory in place — no autograd, no new tensor — so that everything holding
 * `target` (an optimizer, a parent module) sees the new values. The only way nn mutates a parameter.
 * `target` must be a contiguous f32/f16 tensor (parameters always are); `source` a tensor of the same shape on
 * the same device, or host values.
 */
export function assignValues(target: Tensor, source: Tensor | HostTensor, what = 'parameter'): void {
  target.assertUsable(what);
  if (!sameShape(target.shape, source.shape)) {
    throw new ShapeError(
      `${what}: cannot assign a value of shape ${formatShape(source.shape)} to shape ${formatShape(target.shape)}`,
    );
  }
  if (target.dtype === 'bool') throw new DTypeError(`${what}: in-place assignment needs an f32 or f16 tensor`);
  if (!target.isContiguous()) throw new ShapeError(`${what}: in-place assignment needs a contiguous tensor`);
  const device = target.device;
  if (!('storage' in source)) {
    if (device.isGpu) {
      writeGpu(target, hostBytes(target, source.data), what);
    } else {
      const data = target.data as Float32Array;
      for (let i = 0; i < target.size; i++) {
        const value = Number(source.data[i]);
        data[target.offset + i] = target.dtype === 'f16' ? roundToHalf(value) : value;
      }
    }
    return;
  }
  source.assertUsable(`value for ${what}`);
  if (source.device !== device) {
    throw new DeviceMismatchError(
      `${what} lives on ${device.kind} but its new value on ${source.device.kind}; move it first with await value.to(device)`,
    );
  }
  if (source.dtype !== target.dtype) {
    throw new DTypeError(`${what} is ${target.dtype} but its new value is ${source.dtype}; cast it first`);
  }
  const dense = source.contiguous();
  try {
    if (device.isGpu) {
      const bytes = target.size * bytesPerElement(target.dtype);
      const startByte = target.offset * bytesPerElement(target.dtype);
      const sourceByte = dense.offset * bytesPerElement(dense.dtype);
      if (bytes % 4 !== 0 || startByte % 4 !== 0 || sourceByte % 4 !== 0) {
        throw new ShapeError(`${what}: an f16 tensor with an odd number of elements cannot be assigned on the GPU`);
      }
      if (bytes > 0) device.commandEncoder().copyBufferToBuffer(dense.buffer, sourceByte, target.buffer, startByte, bytes);
    } else {
      const from = dense.data as Float32Array;
      (target.data as Float32Array).set(from.subarray(dense.offset, dense.offset + dense.size), target.offset);
    }
  } finally {
    dense.dispose();
  }
}

function writeGpu(target: Tensor, bytes: ArrayBuffer, what: string): void {
  const startByte = target.offset * bytesPerElement(target.dtype);
  const length = target.size * bytesPerElement(target.dtype);
  if (startByte % 4 !== 0) throw new ShapeError(`${what}: the tensor does not start on a 32-bit word`);
  if (length === 0) return;
  // Pending kernels that read the old values must run first: writeBuffer is ordered before the next submit.
  target.device.submit();
  target.device.gpu.queue.writeBuffer(target.buffer, startByte, bytes, 0, Math.ceil(length / 4) * 4);
}

/** The GPU bytes of host values in the target's dtype, padded to whole 32-bit words. */
function hostBytes(target: Tensor, values: ArrayLike<number>): ArrayBuffer {
  if (target.dtype === 'f32') return Float32Array.from(values, Number).buffer;
  const halves = new Uint16Array(Math.ceil(target.size / 2) * 2);
  for (let i = 0; i < target.size; i++) halves[i] = toHalfBits(Number(values[i]));
  return halves.buffer;
}
