import type { Device } from './device';
import { bytesPerElement, fromHalfBits, toHalfBits, type DType } from './dtype';

/** CPU storage: f32 and f16 as Float32Array (f16 values rounded to half precision), bool as Uint8Array. */
export type CpuData = Float32Array | Uint8Array;

/**
 * The memory behind one or more tensor views. Reference-counted: each view holds one reference, and the
 * buffer goes back to the pool when the last view is disposed.
 */
export class Storage {
  private references = 1;
  private released = false;

  private constructor(
    readonly device: Device,
    readonly dtype: DType,
    /** Elements the storage holds. */
    readonly length: number,
    readonly cpu: CpuData | undefined,
    readonly buffer: GPUBuffer | undefined,
  ) {}

  static onCpu(device: Device, dtype: DType, data: CpuData): Storage {
    return new Storage(device, dtype, data.length, data, undefined);
  }

  /** A pooled GPU buffer for `length` elements (rounded up to whole 32-bit words; contents undefined). */
  static onGpu(device: Device, dtype: DType, length: number, label: string): Storage {
    const bytes = Math.max(4, Math.ceil((length * bytesPerElement(dtype)) / 4) * 4);
    const buffer = device.pool.acquire(
      bytes,
      GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
      label,
    );
    return new Storage(device, dtype, length, undefined, buffer);
  }

  get isReleased(): boolean {
    return this.released;
  }

  retain(): this {
    this.references++;
    return this;
  }

  release(): void {
    if (this.released) return;
    this.references--;
    if (this.references > 0) return;
    this.released = true;
    if (this.buffer && !this.device.isLost) this.device.pool.release(this.buffer);
  }
}

/** Bytes to upload for CPU values in a dtype's GPU layout, padded to whole 32-bit words. */
export function encodeForGpu(dtype: DType, values: ArrayLike<number>): ArrayBuffer {
  const bytes = Math.max(4, Math.ceil((values.length * bytesPerElement(dtype)) / 4) * 4);
  const buffer = new ArrayBuffer(bytes);
  if (dtype === 'f32') new Float32Array(buffer).set(values);
  else if (dtype === 'bool') {
    const view = new Uint8Array(buffer);
    for (let i = 0; i < values.length; i++) view[i] = values[i] ? 1 : 0;
  } else {
    const view = new Uint16Array(buffer);
    for (let i = 0; i < values.length; i++) view[i] = toHalfBits(values[i]!);
  }
  return buffer;
}

/** Decodes GPU bytes of a dtype into CPU values (f16 widened to Float32Array). */
export function decodeFromGpu(dtype: DType, bytes: ArrayBuffer, length: number): CpuData {
  if (dtype === 'f32') return new Float32Array(bytes.slice(0, length * 4));
  if (dtype === 'bool') return new Uint8Array(bytes.slice(0, length));
  const halves = new Uint16Array(bytes, 0, length);
  const out = new Float32Array(length);
  for (let i = 0; i < length; i++) out[i] = fromHalfBits(halves[i]!);
  return out;
}
