/**
 * Times GPU work recorded into a webattn Device's shared encoder with @webattn/tensor's samplers (GPU timestamps
 * where the device has 'timestamp-query', else wall clock). Dawn may quantise timestamps (to 65.536 µs unless its
 * `timestamp_quantization` toggle is off), so each sample repeats the call until it lasts about `sampleTargetMs`,
 * and the reported time per call is the median sample divided by the repeats.
 */
import { createCallSampler, median, type Device, type TimedCall, type TimingMethod } from '@webattn/tensor';

export { median, type TimedCall, type TimingMethod };

export interface TimingOptions {
  readonly warmup: number;
  readonly iterations: number;
  readonly sampleTargetMs: number;
  /**
   * After the warm-up calls, keep calling (untimed) until this many GPU milliseconds have run: a GPU left idle while
   * the host draws a shape's inputs clocks down, and on the H200 the first option timed after that read up to 2×
   * slow (bench notes, entry 14).
   */
  readonly warmupMs?: number;
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

/** Picks the timestamp method when the device has the feature, unless told otherwise. */
export function timingMethodFor(device: Device, choice: 'auto' | TimingMethod): TimingMethod {
  if (choice === 'wall-clock') return 'wall-clock';
  if (!device.caps.timestampQuery) {
    if (choice === 'timestamp') throw new Error(`--timing timestamp: the device (${device.info.adapter}) lacks the 'timestamp-query' feature`);
    return 'wall-clock';
  }
  return 'timestamp';
}

/**
 * Runs `call` `warmup` times (the first compiles pipelines), estimates its time to choose the repeats per
 * sample, keeps the GPU busy for `warmupMs`, then takes `iterations` samples. Every sample starts once the work
 * before it has finished (with timestamps, behind the sampler's heater run, which keeps the GPU from idling while the
 * host records the sample).
 */
export async function timeCalls(device: Device, method: TimingMethod, call: TimedCall, options: TimingOptions): Promise<Timing> {
  const sampler = createCallSampler(device, method);
  try {
    let estimate = 0;
    for (let run = 0; run < Math.max(1, options.warmup); run++) estimate = await sampler.sample(call, 1);
    const wanted = estimate > 0 ? Math.ceil(options.sampleTargetMs / estimate) : options.maxRepeats;
    const repeats = Math.max(1, Math.min(options.maxRepeats, wanted));
    for (let spent = 0; spent < (options.warmupMs ?? 0) && estimate > 0; ) spent += (await sampler.sample(call, repeats)) * repeats;
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
