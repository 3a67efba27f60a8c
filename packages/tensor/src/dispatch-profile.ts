/**
 * GPU time per dispatch, on devices with 'timestamp-query': while a profile is open (Device.profileDispatches), each
 * compute pass the device records carries begin and end timestamps, so that a benchmark can tell which kernels of a
 * call take its time (the backward's delta, dK/dV and dQ, say). Each pass is timed alone: the gaps between passes
 * are not counted, so the sum is at most the call's time. Dawn may quantise timestamps to 65.536 µs (browsers do;
 * createDevice turns that off in Node; see gpu-timing.ts): there, sum a kernel over many dispatches before reading
 * much into one.
 */

/** One timed dispatch: its kernel's name (the pass label) and GPU milliseconds. */
export interface DispatchTime {
  readonly kernel: string;
  readonly ms: number;
}

/** The most dispatches one profile times (two timestamps each: WebGPU query sets hold at most 4096). */
export const MAX_PROFILED_DISPATCHES = 2048;

export class DispatchProfile {
  private readonly querySet: GPUQuerySet;
  private readonly kernels: string[] = [];
  /** Dispatches recorded after the profile was full (not timed). */
  untimed = 0;

  constructor(
    private readonly gpu: GPUDevice,
    private readonly capacity: number,
  ) {
    this.querySet = gpu.createQuerySet({ type: 'timestamp', count: 2 * capacity, label: 'dispatch profile' });
  }

  /** The timestamp writes for the next dispatch's pass, or undefined once the profile is full. */
  next(kernel: string): GPUComputePassTimestampWrites | undefined {
    const index = this.kernels.length;
    if (index >= this.capacity) {
      this.untimed++;
      return undefined;
    }
    this.kernels.push(kernel);
    return { querySet: this.querySet, beginningOfPassWriteIndex: 2 * index, endOfPassWriteIndex: 2 * index + 1 };
  }

  /**
   * Records the copy of the timestamps into a mappable buffer (into `encoder`, after every profiled pass); once that
   * is submitted and done, `read` maps it.
   */
  resolve(encoder: GPUCommandEncoder): { read: () => Promise<DispatchTime[]>; destroy: () => void } {
    const count = Math.max(1, this.kernels.length);
    const bytes = 16 * count;
    const resolved = this.gpu.createBuffer({ size: bytes, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC, label: 'dispatch profile resolved' });
    const readback = this.gpu.createBuffer({ size: bytes, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST, label: 'dispatch profile readback' });
    if (this.kernels.length > 0) {
      encoder.resolveQuerySet(this.querySet, 0, 2 * this.kernels.length, resolved, 0);
      encoder.copyBufferToBuffer(resolved, 0, readback, 0, bytes);
    }
    const destroy = () => {
      this.querySet.destroy();
      resolved.destroy();
      readback.destroy();
    };
    const read = async (): Promise<DispatchTime[]> => {
      if (this.kernels.length === 0) return [];
      await readback.mapAsync(GPUMapMode.READ);
      const stamps = new BigUint64Array(readback.getMappedRange().slice(0));
      readback.unmap();
      // A driver that writes no timestamps leaves zeros (or an end before its begin): 0 ms, not a negative time.
      return this.kernels.map((kernel, index) => ({ kernel, ms: stamps[2 * index + 1]! > stamps[2 * index]! ? Number(stamps[2 * index + 1]! - stamps[2 * index]!) / 1e6 : 0 }));
    };
    return { read, destroy };
  }
}
