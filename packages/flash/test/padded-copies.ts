// What the padded-copy kernel tests share (padded-copy-kernel.test.ts, backward-prologue.test.ts): f16 source bits
// with special values, the poison their temporaries start with (poisoning-recorder.ts), and reading a buffer back.
import { toHalfBits } from '@webattn/tensor';
import { randomValues } from '@webattn/tensor/testing';

/** The f16 bits temporaries start with: a value no copy writes where the source is finite. */
export const POISON = 0xabcd;

/** Random f16 bits with NaN (several payloads), ±∞, −0 and subnormals sprinkled in. */
export function sourceBits(count: number, seed: number): Uint16Array {
  const uniform = randomValues(count, seed, 0, 1);
  const values = randomValues(count, seed + 1, -4, 4);
  const specials = [0x7e00, 0x7c01, 0xfe37, 0x7c00, 0xfc00, 0x8000, 0x0001];
  return Uint16Array.from(values, (value, i) => (uniform[i]! < 0.03 ? specials[i % specials.length]! : toHalfBits(value)));
}

/** Temporaries' contents for poisoning-recorder.ts: every f16 element POISON. */
export const poisonHalves = (bytes: number) => new Uint16Array(bytes / 2).fill(POISON);

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
