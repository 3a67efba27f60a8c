import type { Device } from '../device';
import type { DType } from '../dtype';
import { DTypeError, DeviceMismatchError, InvalidArgumentError, ResourceLimitError, ShapeError } from '../errors';
import { formatShape } from '../shape';
import { Storage, type CpuData } from '../storage';
import { Tensor } from '../tensor';

/** An op argument that may be a tensor or a plain number (broadcast as a scalar). */
export type Operand = Tensor | number;

/** Checks that `value` is a usable tensor (not disposed, device alive). */
export function checkTensor(value: unknown, op: string, name: string): Tensor {
  if (!(value instanceof Tensor)) {
    throw new InvalidArgumentError(`${op}: ${name} must be a Tensor, got ${describe(value)}`);
  }
  value.assertUsable(`${op}: ${name}`);
  return value;
}

/** Checks a tensor-or-number operand. */
export function checkOperand(value: unknown, op: string, name: string): Operand {
  if (typeof value === 'number') return value;
  return checkTensor(value, op, name);
}

/** The one device all tensors live on (DeviceMismatchError otherwise). */
export function commonDevice(op: string, tensors: readonly Tensor[]): Device {
  const first = tensors[0];
  if (!first) throw new InvalidArgumentError(`${op} needs at least one tensor argument`);
  for (const t of tensors) {
    if (t.device !== first.device) {
      throw new DeviceMismatchError(
        `${op}: tensors live on different devices (${first.device.kind} ${formatShape(first.shape)} and ${t.device.kind} ${formatShape(t.shape)}); move them with tensor.to(device) first`,
      );
    }
  }
  return first.device;
}

/** Float dtype of an arithmetic result: f32 if any input is f32 (or all are bool), else f16. */
export function promoteFloat(tensors: readonly Tensor[]): DType {
  const dtypes = tensors.map((t) => t.dtype);
  if (dtypes.includes('f32')) return 'f32';
  if (dtypes.includes('f16')) return 'f16';
  return 'f32';
}

export function assertFloat(x: Tensor, op: string, name = 'input'): void {
  if (x.dtype === 'bool') {
    throw new DTypeError(`${op}: ${name} is a bool tensor; cast it first with cast(x, 'f32')`);
  }
}

export function assertBool(x: Tensor, op: string, name: string): void {
  if (x.dtype !== 'bool') {
    throw new DTypeError(`${op}: ${name} must be a bool tensor, got ${x.dtype}; build it with a comparison or { dtype: 'bool' }`);
  }
}

export function assertFiniteNumber(value: unknown, op: string, name: string): number {
  if (typeof value !== 'number' || Number.isNaN(value)) {
    throw new InvalidArgumentError(`${op}: ${name} must be a number, got ${describe(value)}`);
  }
  return value;
}

export function assertMaxRank(x: { shape: readonly number[] }, op: string, maxRank: number): void {
  if (x.shape.length > maxRank) {
    throw new ShapeError(`${op} supports rank <= ${maxRank}, got ${formatShape(x.shape)}; reshape to fewer dims first`);
  }
}

/**
 * The typed array CPU kernels write into: Float64Array when any input holds float64 values (used by the
 * gradient checks, which evaluate the very same kernels in float64), else Float32Array.
 */
export function cpuFloatArray(tensors: readonly Tensor[]): Float32ArrayConstructor | Float64ArrayConstructor {
  return tensors.some((t) => t.data instanceof Float64Array) ? Float64Array : Float32Array;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array (wrap it with tensor(device, values))';
  return typeof value === 'object' ? (value.constructor?.name ?? 'object') : `${typeof value} ${String(value)}`;
}

/** Wraps a CPU kernel's output array as a contiguous tensor (float64 arrays stay float64: see cpuFloatArray). */
export function cpuTensor(
  device: Device,
  dtype: DType,
  data: Float32Array | Float64Array | Uint8Array,
  shape: readonly number[],
): Tensor {
  return new Tensor(Storage.onCpu(device, dtype, data as CpuData), shape);
}

/** Throws ResourceLimitError when a tensor's buffer is larger than one storage binding may be. */
export function assertBindable(op: string, tensors: readonly Tensor[]): void {
  for (const t of tensors) {
    const bytes = t.buffer.size;
    const limit = t.device.caps.maxStorageBufferBindingSize;
    if (bytes > limit) {
      throw new ResourceLimitError(
        `${op}: ${t.toString()} needs a ${bytes}-byte storage binding but this device allows ${limit}; split the work into smaller tensors`,
        bytes,
        limit,
      );
    }
  }
}
