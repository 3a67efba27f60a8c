/**
 * Timing GPU work recorded into a Device's shared encoder (used by flash's autotuner and the benchmarks). With the
 * 'timestamp-query' feature, empty compute passes carrying `timestampWrites` bracket the calls, so the time is the
 * GPU's own (no recording, submit or readback latency); otherwise wall clock around the calls and `device.sync()`.
 * Dawn may quantise timestamps (to 65.536 µs unless its `timestamp_quantization` toggle is off): time enough
 * repeats per sample that this does not matter.
 */
import type { Device } from './device';

export type TimingMethod = 'timestamp' | 'wall-clock';

/** One timed call: records its GPU work, returns what to dispose afterwards (outputs, temporaries). */
export type TimedCall = () => readonly { dispose(): void }[];

/** Times back-to-back calls; `destroy()` frees its query set and buffers. */
export interface CallSampler {
  readonly method: TimingMethod;
  /** Milliseconds per call of `repeats` back-to-back calls, starting with the GPU idle. */
  sample(call: TimedCall, repeats: number): Promise<number>;
  /** Every timestamp so far came back as a multiple of 65 536 ns (Dawn's quantisation). */
  readonly quantized: boolean;
  destroy(): void;
}

const QUANTUM_NS = 65536n;

/** The timestamp method where the device has 'timestamp-query', else wall clock. */
export function bestTimingMethod(device: Device): TimingMethod {
  return device.isGpu && device.caps.timestampQuery ? 'timestamp' : 'wall-clock';
}

export function createCallSampler(device: Device, method: TimingMethod): CallSampler {
  return method === 'timestamp' ? timestampSampler(device) : wallClockSampler(device);
}

/** The median of some values (the middle two's mean for an even count). */
export function median(values: readonly number[]): number {
  if (values.length === 0) throw new RangeError('median of no values');
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

function runCalls(call: TimedCall, repeats: number): void {
  for (let repeat = 0; repeat < repeats; repeat++) for (const item of call()) item.dispose();
}

function wallClockSampler(device: Device): CallSampler {
  return {
    method: 'wall-clock',
    quantized: false,
    async sample(call, repeats) {
      await device.sync();
      const start = performance.now();
      runCalls(call, repeats);
      await device.sync();
      return (performance.now() - start) / repeats;
    },
    destroy() {},
  };
}

function timestampSampler(device: Device): CallSampler {
  const gpu = device.gpu;
  const querySet = gpu.createQuerySet({ type: 'timestamp', count: 2, label: 'timing timestamps' });
  const resolved = gpu.createBuffer({ size: 16, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC, label: 'timing timestamps resolved' });
  const readback = gpu.createBuffer({ size: 16, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST, label: 'timing timestamps readback' });
  let quantized = true;
  const mark = (index: number) =>
    device.commandEncoder().beginComputePass({ label: 'timestamp', timestampWrites: { querySet, beginningOfPassWriteIndex: index } }).end();
  return {
    method: 'timestamp',
    get quantized() {
      return quantized;
    },
    async sample(call, repeats) {
      await device.sync();
      // One submit for the marks and every call: with the automatic submits in between, a GPU faster than the host
      // records would idle between them, and that host time would count (bench notes, entry 17).
      device.withSubmitsHeld(() => {
        mark(0);
        runCalls(call, repeats);
        mark(1);
      });
      const encoder = device.commandEncoder();
      encoder.resolveQuerySet(querySet, 0, 2, resolved, 0);
      encoder.copyBufferToBuffer(resolved, 0, readback, 0, 16);
      await device.sync();
      await readback.mapAsync(GPUMapMode.READ);
      const [start, end] = new BigUint64Array(readback.getMappedRange().slice(0));
      readback.unmap();
      if (start! % QUANTUM_NS !== 0n || end! % QUANTUM_NS !== 0n) quantized = false;
      return Number(end! - start!) / 1e6 / repeats;
    },
    destroy() {
      querySet.destroy();
      resolved.destroy();
      readback.destroy();
    },
  };
}
