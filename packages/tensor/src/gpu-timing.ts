/**
 * Timing GPU work recorded into a Device's shared encoder (used by flash's autotuner and the benchmarks). With the
 * 'timestamp-query' feature, empty compute passes carrying `timestampWrites` bracket the calls, so the time is the
 * GPU's own (no recording, submit or readback latency), and a heater kernel keeps the GPU busy while the host
 * records them (see timestampSampler); otherwise wall clock around the calls and `device.sync()`.
 * Dawn may quantise timestamps (to 65.536 µs unless its `timestamp_quantization` toggle is off, as createDevice
 * has it in Node; browsers quantise): time enough repeats per sample that this does not matter.
 */
import type { Device } from './device';
import { runKernel } from './kernel';
import type { KernelSource } from './pipeline-cache';
import { uniformLayout } from './uniforms';
import { preprocessWgsl } from './wgsl';
import heaterSource from './gpu-heater.wgsl?raw';

export type TimingMethod = 'timestamp' | 'wall-clock';

/** One timed call: records its GPU work, returns what to dispose afterwards (outputs, temporaries). */
export type TimedCall = () => readonly { dispose(): void }[];

/** Times back-to-back calls; `destroy()` frees its query set and buffers. */
export interface CallSampler {
  readonly method: TimingMethod;
  /**
   * Milliseconds per call of `repeats` back-to-back calls, starting after the work before them has finished (with
   * timestamps, behind a heater run that kept the GPU busy while the host recorded them).
   */
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

const heaterUniforms = uniformLayout([['iterations', 'u32']]);
const heaterKernel: KernelSource = {
  name: 'gpu-heater',
  variant: 'spin',
  code: () => preprocessWgsl(heaterSource, { replacements: { UNIFORMS: heaterUniforms.wgslStruct('Params') } }),
};
/** The longest heater run: a host recording for longer leaves the GPU idle for the rest. */
const MAX_HEATER_MS = 100;
/**
 * The heater's GPU time per iteration until its own timestamps have measured it on the device: a slow device's
 * (lavapipe took ~420 ns on 2 cores), so that the first run stays short anywhere (on a fast GPU too short to heat;
 * the timed samples come after warm-up ones, which measure it). Assuming 1 ns, the first heater of every sampler ran
 * 100 ms of recording as 10⁸ iterations: 42 s each on lavapipe.
 */
const UNMEASURED_HEATER_NS = 1000;
/** The heater's measured GPU time per iteration, per device (kept across samplers). */
const heaterNsPerIteration = new WeakMap<Device, number>();

function timestampSampler(device: Device): CallSampler {
  const gpu = device.gpu;
  // Indices 0 and 1 bracket the calls, 2 and 3 the heater.
  const querySet = gpu.createQuerySet({ type: 'timestamp', count: 4, label: 'timing timestamps' });
  const resolved = gpu.createBuffer({ size: 32, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC, label: 'timing timestamps resolved' });
  const readback = gpu.createBuffer({ size: 32, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST, label: 'timing timestamps readback' });
  const heaterSink = gpu.createBuffer({ size: 256, usage: GPUBufferUsage.STORAGE, label: 'gpu heater sink' });
  let quantized = true;
  // The host's recording time of the last sample.
  let recordMs = 0;
  const mark = (index: number) =>
    device.commandEncoder().beginComputePass({ label: 'timestamp', timestampWrites: { querySet, beginningOfPassWriteIndex: index } }).end();
  // The GPU would idle while the host records a sample's calls (the host needs ~4× the GPU's time per call at B32
  // H8 N500 D16), then run them in one burst; NVIDIA's clocks fell to 660–1440 MHz from 1980 in some of those bursts
  // and not in others, so short kernels read up to 1.5× slow in some runs (bench notes, entry 22). A heater submitted
  // first keeps the GPU busy for about the last sample's recording time; the calls queue behind it.
  const heat = (): number => {
    const iterations = Math.floor((Math.min(recordMs, MAX_HEATER_MS) * 1e6) / (heaterNsPerIteration.get(device) ?? UNMEASURED_HEATER_NS));
    if (iterations <= 0) return 0;
    mark(2);
    runKernel(device, heaterKernel, { buffers: [heaterSink], uniforms: heaterUniforms.pack({ iterations }), workgroups: [1] });
    mark(3);
    device.submit();
    return iterations;
  };
  return {
    method: 'timestamp',
    get quantized() {
      return quantized;
    },
    async sample(call, repeats) {
      await device.sync();
      const heaterIterations = heat();
      const recordStart = performance.now();
      // One submit for the marks and every call: with the automatic submits in between, a GPU faster than the host
      // records would idle between them, and that host time would count (bench notes, entry 17).
      device.withSubmitsHeld(() => {
        mark(0);
        runCalls(call, repeats);
        mark(1);
      });
      recordMs = performance.now() - recordStart;
      const encoder = device.commandEncoder();
      encoder.resolveQuerySet(querySet, 0, 4, resolved, 0);
      encoder.copyBufferToBuffer(resolved, 0, readback, 0, 32);
      await device.sync();
      await readback.mapAsync(GPUMapMode.READ);
      const [start, end, heaterStart, heaterEnd] = new BigUint64Array(readback.getMappedRange().slice(0));
      readback.unmap();
      if (start! % QUANTUM_NS !== 0n || end! % QUANTUM_NS !== 0n) quantized = false;
      if (heaterIterations > 0 && heaterEnd! > heaterStart!) heaterNsPerIteration.set(device, Number(heaterEnd! - heaterStart!) / heaterIterations);
      return Number(end! - start!) / 1e6 / repeats;
    },
    destroy() {
      querySet.destroy();
      resolved.destroy();
      readback.destroy();
      heaterSink.destroy();
    },
  };
}
