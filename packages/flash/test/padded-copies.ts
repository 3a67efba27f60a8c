// What the padded-copy kernel tests share (padded-copy-kernel.test.ts, backward-prologue.test.ts): f16 source bits
// with special values, a recorder whose temporaries start poisoned, and reading a buffer back.
import { toHalfBits } from '@webattn/tensor';
import { randomValues } from '@webattn/tensor/testing';
import { rawRecorder, type KernelRecorder } from '../src/recorder';

/** The f16 bits temporaries start with: a value no copy writes where the source is finite. */
export const POISON = 0xabcd;

/** Random f16 bits with NaN (several payloads), ±∞, −0 and subnormals sprinkled in. */
export function sourceBits(count: number, seed: number): Uint16Array {
  const uniform = randomValues(count, seed, 0, 1);
  const values = randomValues(count, seed + 1, -4, 4);
  const specials = [0x7e00, 0x7c01, 0xfe37, 0x7c00, 0xfc00, 0x8000, 0x0001];
  return Uint16Array.from(values, (value, i) => (uniform[i]! < 0.03 ? specials[i % specials.length]! : toHalfBits(value)));
}

/** A raw recorder whose temporaries (scratch too) start filled with POISON. */
export function poisoningRecorder(device: GPUDevice, encoder: GPUCommandEncoder): KernelRecorder {
  const raw = rawRecorder(device, encoder);
  const poisoned = (bytes: number, usage: GPUBufferUsageFlags, label: string) => {
    const buffer = raw.temporary(bytes, usage | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST, label);
    device.queue.writeBuffer(buffer, 0, new Uint16Array(buffer.size / 2).fill(POISON));
    return buffer;
  };
  return { ...raw, temporary: poisoned, scratch: poisoned };
}

export async function readBack(device: GPUDevice, buffer: GPUBuffer, bytes: number): Promise<ArrayBuffer> {
  const staging = device.createBuffer({ size: Math.ceil(bytes / 4) * 4, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const encoder = device.createCommandEncoder();
  encoder.copyBufferToBuffer(buffer, 0, staging, 0, staging.size);
  device.queue.submit([encoder.finish()]);
  await staging.mapAsync(GPUMapMode.READ);
  const data = staging.getMappedRange().slice(0, bytes);
  staging.destroy();
  return data;
}
