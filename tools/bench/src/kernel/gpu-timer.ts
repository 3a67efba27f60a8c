/**
 * Times GPU work recorded into a webattn Device's shared encoder. With the 'timestamp-query' feature, empty
 * compute passes carrying `timestampWrites` bracket the calls, so the time is the GPU's own (no submit or
 * readback latency); otherwise wall-clock around the calls and `device.sync()`. Dawn may quantise timestamps
 * (to 65.536 µs unless its `timestamp_quantization` toggle is off), so each sample repeats the call until it
 * lasts about `sampleTargetMs`, and the reported time per call is the median sample divided by the repeats.
 */
import type { Device } from '@webattn/tensor';

export type TimingMethod = 'timestamp' | 'wall-clock';

/** One timed call: records its GPU work, returns what to dispose afterwards (outputs, temporaries). */
export type TimedCall = () => readonly { dispose(): void }[];

export interface TimingOptions {
  readonly warmup: number;
  readonly iterations: number;
  readonly sampleTargetMs: number;
  /** Upper bound on calls per sample (e.g. so their outputs fit in memory until the sample is submitted). */
  readonly maxRepeats: number;
}

export interface Timing {
  readonly method: TimingMethod;
  /** Median milliseconds per call. */
  readonly ms: number;
  /** Milliseconds per call of every sample, in the order taken. */
  readonly samplesMs: readonly number[];
  /** Calls per sample. */
  readonly repeats: number;
  /** Timestamps came back as multiples of 65 536 ns (Dawn's quantisation). */
  readonly quantized: boolean;
}

const QUANTUM_NS = 65536n;

export function median(values: readonly number[]): number {
  if (values.length === 0) throw new RangeError('median of no values');
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/** Picks the timestamp method when the device has the feature, unless told otherwise. */
export function timingMethodFor(device: Device, choice: 'auto' | TimingMethod): TimingMethod {
  if (choice === 'wall-clock') return 'wall-clock';
  if (!device.caps.timestampQuery) {
    if (choice === 'timestamp') throw new Error(`--timing timestamp: the device (${device.info.adapter}) lacks the 'timestamp-query' feature`);
    return 'wall-clock';
  }
  return 'timestamp';
}

interface Sampler {
  /** Milliseconds per call of `repeats` back-to-back calls. */
  sample(call: TimedCall, repeats: number): Promise<number>;
  readonly quantized: boolean;
  destroy(): void;
}

function runCalls(call: TimedCall, repeats: number): void {
  for (let repeat = 0; repeat < repeats; repeat++) for (const item of call()) item.dispose();
}

function wallClockSampler(device: Device): Sampler {
  return {
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

function timestampSampler(device: Device): Sampler {
  const gpu = device.gpu;
  const querySet = gpu.createQuerySet({ type: 'timestamp', count: 2, label: 'bench timestamps' });
  const resolved = gpu.createBuffer({ size: 16, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC, label: 'bench timestamps resolved' });
  const readback = gpu.createBuffer({ size: 16, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST, label: 'bench timestamps readback' });
  let quantized = true;
  const mark = (index: number) =>
    device.commandEncoder().beginComputePass({ label: 'bench timestamp', timestampWrites: { querySet, beginningOfPassWriteIndex: index } }).end();
  return {
    get quantized() {
      return quantized;
    },
    async sample(call, repeats) {
      mark(0);
      runCalls(call, repeats);
      mark(1);
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

/**
 * Runs `call` `warmup` times (the first compiles pipelines), estimates its time to choose the repeats per
 * sample, then takes `iterations` samples. Every sample starts with the GPU idle.
 */
export async function timeCalls(device: Device, method: TimingMethod, call: TimedCall, options: TimingOptions): Promise<Timing> {
  const sampler = method === 'timestamp' ? timestampSampler(device) : wallClockSampler(device);
  try {
    let estimate = 0;
    for (let run = 0; run < Math.max(1, options.warmup); run++) estimate = await sampler.sample(call, 1);
    const wanted = estimate > 0 ? Math.ceil(options.sampleTargetMs / estimate) : options.maxRepeats;
    const repeats = Math.max(1, Math.min(options.maxRepeats, wanted));
    const samplesMs: number[] = [];
    for (let iteration = 0; iteration < options.iterations; iteration++) samplesMs.push(await sampler.sample(call, repeats));
    return { method, ms: median(samplesMs), samplesMs, repeats, quantized: method === 'timestamp' && sampler.quantized };
  } finally {
    // A call that threw (e.g. math refusing a size) leaves the sampler's first timestamp pass in the shared
    // encoder: submit it before the query set is destroyed. The call's own error is already on its way.
    await device.sync().catch(() => undefined);
    sampler.destroy();
  }
}
