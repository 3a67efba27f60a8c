// A raw recorder whose temporaries (scratch too) start filled with a poison value, so that a kernel reading what it
// never wrote shows up in the tests (padded-copies.ts: f16 bits; chunked-runs.ts: NaN).
import { rawRecorder, type KernelRecorder } from '../src/recorder';

/** `fill(bytes)`: the contents each temporary of `bytes` bytes starts with. */
export function poisoningRecorder(device: GPUDevice, encoder: GPUCommandEncoder, fill: (bytes: number) => ArrayBufferView<ArrayBuffer>): KernelRecorder {
  const raw = rawRecorder(device, encoder);
  const poisoned = (bytes: number, usage: GPUBufferUsageFlags, label: string) => {
    const buffer = raw.temporary(bytes, usage | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST, label);
    device.queue.writeBuffer(buffer, 0, fill(buffer.size));
    return buffer;
  };
  return { ...raw, temporary: poisoned, scratch: poisoned };
}
