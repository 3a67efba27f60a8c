import type { Device } from './device';
import { bytesPerElement, roundToHalf as roundToHalfValue, type DType } from './dtype';
import { DeviceMismatchError, DisposedTensorError, InvalidArgumentError, ShapeError } from './errors';
import { runKernel, workgroupGrid } from './kernel';
import { contiguousStrides, formatShape, normalizeDim, numel, type Shape } from './shape';
import { decodeFromGpu, encodeForGpu, Storage, type CpuData } from './storage';
import { uniformLayout } from './uniforms';
import copySource from './copy.wgsl?raw';
import { preprocessWgsl } from './wgsl';
import { record, runBackward } from './autograd';
import { reduceToShape } from './ops/broadcast';
import { narrowBackward } from './ops/cat';

/** A recorded operation for autograd: its inputs and how to turn the output's gradient into theirs. */
export interface GradFn {
  readonly name: string;
  readonly inputs: readonly Tensor[];
  /** Gradients for each input (null where an input needs none), given the output's gradient. */
  backward(gradOutput: Tensor): readonly (Tensor | null)[];
  /** Frees what the node saved for backward (called by autograd once the node's backward ran). Optional. */
  release?(): void;
}

const MAX_RANK = 6;

const copyLayout = uniformLayout([
  ['count', 'u32'],
  ['offset', 'u32'],
  ['element_bytes', 'u32'],
  ...Array.from({ length: MAX_RANK }, (_, i) => [`size${i}`, 'u32'] as const),
  ...Array.from({ length: MAX_RANK }, (_, i) => [`stride${i}`, 'u32'] as const),
]);

const copyKernel = {
  name: 'strided-copy',
  variant: 'any-dtype',
  code: () => preprocessWgsl(copySource, { replacements: { UNIFORMS: copyLayout.wgslStruct('Uniforms') } }),
};

/**
 * The safety net behind `dispose()`: a GPU tensor garbage-collected without `dispose()` gives its storage
 * reference back, so its buffer returns to the pool. Collection happens whenever the JavaScript engine decides
 * (maybe never), so call `dispose()` for prompt reuse; the net only keeps forgotten tensors from leaking forever.
 */
const undisposedTensors = new FinalizationRegistry<Storage>((storage) => storage.release());

/**
 * An n-dimensional array on a device. Views (transpose, permute, reshape of contiguous data, expand) share the
 * storage and copy nothing; `contiguous()` copies only when the layout is not already row-major.
 */
export class Tensor {
  readonly shape: Shape;
  readonly strides: Shape;
  /** Element offset of this view into its storage. */
  readonly offset: number;
  requiresGrad: boolean;
  grad: Tensor | null = null;
  gradFn: GradFn | null = null;
  private disposed = false;

  /** @internal Create tensors with `tensor()`, `zeros()`, ... */
  constructor(
    readonly storage: Storage,
    shape: Shape,
    strides?: Shape,
    offset = 0,
    requiresGrad = false,
  ) {
    this.shape = Object.freeze([...shape]);
    this.strides = Object.freeze(strides ? [...strides] : contiguousStrides(shape));
    this.offset = offset;
    this.requiresGrad = requiresGrad;
    if (storage.buffer) undisposedTensors.register(this, storage, this);
  }

  get device(): Device {
    return this.storage.device;
  }

  get dtype(): DType {
    return this.storage.dtype;
  }

  get rank(): number {
    return this.shape.length;
  }

  get size(): number {
    return numel(this.shape);
  }

  get isDisposed(): boolean {
    return this.disposed || this.storage.isReleased;
  }

  /** The GPU buffer behind this view (check `offset` and `strides` before assuming a layout). */
  get buffer(): GPUBuffer {
    this.assertUsable();
    if (!this.storage.buffer) throw new DeviceMismatchError('this tensor lives on the CPU; it has no GPU buffer');
    return this.storage.buffer;
  }

  /** The CPU array behind this view (check `offset` and `strides` before assuming a layout). */
  get data(): CpuData {
    this.assertUsable();
    if (!this.storage.cpu) throw new DeviceMismatchError('this tensor lives on the GPU; read it with toArray()');
    return this.storage.cpu;
  }

  /** Throws if disposed or if its device was lost. */
  assertUsable(what = 'tensor'): void {
    if (this.isDisposed) {
      throw new DisposedTensorError(`${what} ${formatShape(this.shape)} (${this.dtype}) was used after dispose()`);
    }
    this.device.assertUsable();
  }

  isContiguous(): boolean {
    const expected = contiguousStrides(this.shape);
    return this.shape.every((size, dim) => size === 1 || this.strides[dim] === expected[dim]);
  }

  /** A view sharing this tensor's storage. */
  private view(shape: Shape, strides: Shape, offset = this.offset): Tensor {
    this.assertUsable();
    return new Tensor(this.storage.retain(), shape, strides, offset);
  }

  /** Swaps two dimensions (a view). */
  transpose(dim0: number, dim1: number): Tensor {
    const a = normalizeDim(dim0, this.rank, 'transpose dim0');
    const b = normalizeDim(dim1, this.rank, 'transpose dim1');
    const order = this.shape.map((_, i) => (i === a ? b : i === b ? a : i));
    return this.permute(order);
  }

  /** Reorders dimensions (a view): output dim i is input dim `order[i]`. */
  permute(order: readonly number[]): Tensor {
    const dims = order.map((dim) => normalizeDim(dim, this.rank, 'permute dim'));
    if (dims.length !== this.rank || new Set(dims).size !== this.rank) {
      throw new ShapeError(
        `permute needs each of the ${this.rank} dims exactly once, got [${order.join(', ')}] for shape ${formatShape(this.shape)}`,
      );
    }
    const out = this.view(
      dims.map((dim) => this.shape[dim]!),
      dims.map((dim) => this.strides[dim]!),
    );
    const inverse = new Array<number>(dims.length);
    dims.forEach((dim, i) => (inverse[dim] = i));
    return record(out, 'permute', [this], [], (grad) => [grad.permute(inverse)]);
  }

  /** Same elements, new shape: a view when contiguous, else a contiguous copy. One size may be -1. */
  reshape(shape: readonly number[]): Tensor {
    const inferred = shape.indexOf(-1);
    const known = numel(shape.filter((size) => size !== -1));
    const resolved = [...shape];
    if (inferred >= 0) {
      if (shape.lastIndexOf(-1) !== inferred || known === 0 || this.size % known !== 0) {
        throw new ShapeError(`cannot reshape ${formatShape(this.shape)} to ${formatShape(shape)}`);
      }
      resolved[inferred] = this.size / known;
    }
    if (resolved.some((size) => !Number.isInteger(size) || size < 0) || numel(resolved) !== this.size) {
      throw new ShapeError(
        `cannot reshape ${formatShape(this.shape)} (${this.size} elements) to ${formatShape(shape)} (${numel(resolved)} elements)`,
      );
    }
    let reshaped: Tensor;
    if (this.isContiguous()) reshaped = this.view(resolved, contiguousStrides(resolved));
    else {
      const copy = this.denseCopy();
      reshaped = copy.view(resolved, contiguousStrides(resolved));
      copy.dispose();
    }
    const inputShape = this.shape;
    return record(reshaped, 'reshape', [this], [], (grad) => [grad.reshape(inputShape)]);
  }

  /** Broadcasts size-1 dims (and new leading dims) to `shape` with stride 0 (a view). -1 keeps a size. */
  expand(shape: readonly number[]): Tensor {
    if (shape.length < this.rank) {
      throw new ShapeError(`expand to ${formatShape(shape)} has fewer dims than ${formatShape(this.shape)}`);
    }
    const lead = shape.length - this.rank;
    const strides: number[] = [];
    const resolved = shape.map((size, i) => {
      const own = i >= lead ? this.shape[i - lead]! : 1;
      const target = size === -1 ? own : size;
      if (own !== target && own !== 1) {
        throw new ShapeError(
          `cannot expand ${formatShape(this.shape)} to ${formatShape(shape)}: dim ${i} is ${own}, only size-1 dims can grow`,
        );
      }
      strides.push(i < lead || (own === 1 && target !== 1) ? 0 : this.strides[i - lead]!);
      return target;
    });
    const inputShape = this.shape;
    return record(this.view(resolved, strides), 'expand', [this], [], (grad) => [reduceToShape(grad, inputShape)]);
  }

  /** Inserts a size-1 dimension at `dim` (a view). */
  unsqueeze(dim: number): Tensor {
    const at = dim < 0 ? dim + this.rank + 1 : dim;
    if (!Number.isInteger(at) || at < 0 || at > this.rank) {
      throw new ShapeError(`unsqueeze dim ${dim} is out of range for rank ${this.rank}`);
    }
    const shape = [...this.shape];
    const strides = [...this.strides];
    shape.splice(at, 0, 1);
    strides.splice(at, 0, 0);
    const inputShape = this.shape;
    return record(this.view(shape, strides), 'unsqueeze', [this], [], (grad) => [grad.reshape(inputShape)]);
  }

  /** Elements `start .. start + length - 1` along `dim` (a view, no copy). */
  narrow(dim: number, start: number, length: number): Tensor {
    const d = normalizeDim(dim, this.rank, 'narrow dim');
    const size = this.shape[d]!;
    if (!Number.isInteger(start) || !Number.isInteger(length) || start < 0 || length < 0 || start + length > size) {
      throw new InvalidArgumentError(
        `narrow(dim ${dim}, start ${start}, length ${length}) does not fit dim ${d} of size ${size} in ${formatShape(this.shape)}; need 0 <= start and start + length <= ${size}`,
      );
    }
    const shape = [...this.shape];
    shape[d] = length;
    const out = this.view(shape, this.strides, this.offset + start * this.strides[d]!);
    const inputShape = this.shape;
    return record(out, 'narrow', [this], [], (grad) => [narrowBackward(grad, inputShape, d, start)]);
  }

  /** A view of the same values that is cut from the graph: no gradFn, requiresGrad false. */
  detach(): Tensor {
    return this.view(this.shape, this.strides);
  }

  /**
   * Backpropagates from this tensor, accumulating into the `.grad` of every leaf that requires grad.
   * `gradient` (same shape) defaults to 1 for a one-element tensor; other shapes need one (AutogradError).
   */
  backward(gradient?: Tensor): void {
    runBackward(this, gradient);
  }

  /** Row-major copy (or a new reference to the same storage when already contiguous and offset 0). */
  contiguous(): Tensor {
    return record(this.denseCopy(), 'contiguous', [this], [], (grad) => [grad]);
  }

  /** contiguous() without autograd. */
  private denseCopy(): Tensor {
    this.assertUsable();
    if (this.isContiguous() && this.offset === 0 && this.storage.length === this.size) {
      return this.view(this.shape, contiguousStrides(this.shape));
    }
    return this.device.isGpu ? this.gpuCopy() : this.cpuCopy();
  }

  private cpuCopy(): Tensor {
    const source = this.data;
    const out = new (source.constructor as Float32ArrayConstructor)(this.size); // keeps float64 gradient-check data
    const index = new Array<number>(this.rank).fill(0);
    for (let i = 0; i < this.size; i++) {
      let element = this.offset;
      for (let dim = 0; dim < this.rank; dim++) element += index[dim]! * this.strides[dim]!;
      out[i] = source[element]!;
      for (let dim = this.rank - 1; dim >= 0; dim--) {
        if (++index[dim]! < this.shape[dim]!) break;
        index[dim] = 0;
      }
    }
    return new Tensor(Storage.onCpu(this.device, this.dtype, out), this.shape);
  }

  private gpuCopy(): Tensor {
    if (this.rank > MAX_RANK) throw new ShapeError(`strided copies support rank <= ${MAX_RANK}, got ${this.rank}`);
    const storage = Storage.onGpu(this.device, this.dtype, this.size, `contiguous ${formatShape(this.shape)}`);
    const pad = MAX_RANK - this.rank;
    const values: Record<string, number> = {
      count: this.size,
      offset: this.offset,
      element_bytes: bytesPerElement(this.dtype),
    };
    for (let i = 0; i < MAX_RANK; i++) {
      values[`size${i}`] = i < pad ? 1 : this.shape[i - pad]!;
      values[`stride${i}`] = i < pad ? 0 : this.strides[i - pad]!;
    }
    const words = Math.ceil((this.size * bytesPerElement(this.dtype)) / 4);
    if (words > 0) {
      runKernel(this.device, copyKernel, {
        buffers: [this.storage.buffer!, storage.buffer!],
        uniforms: copyLayout.pack(values as Parameters<typeof copyLayout.pack>[0]),
        workgroups: workgroupGrid(this.device, Math.ceil(words / 64)),
      });
    }
    return new Tensor(storage, this.shape);
  }

  /**
   * The values in row-major order: Float32Array for f32 and f16 (widened), Uint8Array (0/1) for bool.
   * On the GPU this submits pending work and waits for it.
   */
  async toArray(): Promise<CpuData> {
    this.assertUsable();
    const dense = this.denseCopy();
    try {
      if (!dense.device.isGpu) {
        const data = dense.data;
        return data instanceof Uint8Array ? data.slice(0, dense.size) : data.slice(0, dense.size);
      }
      const device = dense.device;
      const bytes = Math.max(4, Math.ceil((dense.size * bytesPerElement(dense.dtype)) / 4) * 4);
      const staging = device.gpu.createBuffer({
        size: bytes,
        usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
        label: 'readback',
      });
      try {
        device.commandEncoder().copyBufferToBuffer(dense.buffer, 0, staging, 0, bytes);
        device.submit();
        await staging.mapAsync(GPUMapMode.READ);
        const copy = staging.getMappedRange().slice(0);
        staging.unmap();
        device.assertUsable();
        return decodeFromGpu(dense.dtype, copy, dense.size);
      } catch (error) {
        device.assertUsable();
        throw error;
      } finally {
        staging.destroy();
      }
    } finally {
      dense.dispose();
    }
  }

  /** The same values on another device (a copy), keeping dtype. */
  async to(device: Device): Promise<Tensor> {
    this.assertUsable();
    const values = this.device === device ? null : await this.toArray();
    if (!values) return this.denseCopy();
    return fromValues(device, this.dtype, values, this.shape);
  }

  /** Releases this view's reference to its storage; the memory returns to the pool with the last view. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    undisposedTensors.unregister(this);
    this.storage.release();
  }

  toString(): string {
    return `Tensor(${formatShape(this.shape)}, ${this.dtype}, ${this.device.kind}${this.requiresGrad ? ', requiresGrad' : ''})`;
  }
}

/** A contiguous tensor on `device` holding `values` (already validated), in `dtype`. */
export function fromValues(device: Device, dtype: DType, values: ArrayLike<number>, shape: Shape): Tensor {
  device.assertUsable();
  if (device.isGpu) {
    const storage = Storage.onGpu(device, dtype, values.length, `tensor ${formatShape(shape)}`);
    device.gpu.queue.writeBuffer(storage.buffer!, 0, encodeForGpu(dtype, values));
    return new Tensor(storage, shape);
  }
  let data: CpuData;
  if (dtype === 'bool') data = Uint8Array.from(values, (value) => (value ? 1 : 0));
  else if (dtype === 'f16') data = Float32Array.from(values, (value) => roundToHalfValue(value));
  else data = Float32Array.from(values);
  return new Tensor(Storage.onCpu(device, dtype, data), shape);
}

/** An uninitialised contiguous tensor (GPU: pooled buffer, contents undefined; CPU: zeros). */
export function emptyTensor(device: Device, dtype: DType, shape: Shape, label = 'tensor'): Tensor {
  device.assertUsable();
  const length = numel(shape);
  if (device.isGpu) return new Tensor(Storage.onGpu(device, dtype, length, `${label} ${formatShape(shape)}`), shape);
  const data = dtype === 'bool' ? new Uint8Array(length) : new Float32Array(length);
  return new Tensor(Storage.onCpu(device, dtype, data), shape);
}

