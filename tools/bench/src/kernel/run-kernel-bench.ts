/**
 * The kernel benchmark's loop: for every shape, dtype and option set, each backend's forward and backward are
 * timed (see gpu-timer.ts) and turned into one record with its milliseconds and TFLOP/s, or the reason it did
 * not run ("refused: …" from the backend's own check or its ResourceLimitError; "error: …" for anything else).
 */
import {
  chooseTiles,
  matrixBackwardShapes,
  storedQueryShape,
  tunedBackwardShapes,
  tunedForwardTiles,
  type FlashTiles,
  type MatrixBackwardShapes,
  type StoredQueryShape,
} from '@webattn/flash';
import { InvalidArgumentError, ResourceLimitError, type Device } from '@webattn/tensor';
import { maxAbsDiff } from '@webattn/tensor/testing';
import { benchInputs, type BenchInputs } from './bench-inputs';
import { timeCalls, timingMethodFor, type TimingMethod } from './gpu-timer';
import type { BackendName, BenchDType, BenchShape, KernelBenchConfig } from './kernel-args';
import { kernelBackend, type ForwardResult, type KernelBackend, type Pass } from './kernel-backends';
import { profileCalls, type PassProfile } from './kernel-profile';
import { BACKWARD_FLOP_FACTOR, forwardFlops, type OptionSet } from './option-sets';

export const PASSES: readonly Pass[] = ['forward', 'backward'];

/** One measured (or refused) combination of shape, dtype, option set, backend and pass. */
export interface KernelRecord {
  readonly shape: BenchShape;
  readonly dtype: BenchDType;
  readonly option: string;
  readonly backend: BackendName;
  readonly pass: Pass;
  /** 'ok', or 'refused: <why>' / 'error: <message>' (then ms and tflops are null). */
  readonly status: string;
  /** How this record was timed (null when it did not run). */
  readonly timing: TimingMethod | null;
  readonly ms: number | null;
  readonly tflops: number | null;
  /** FLOPs counted for this pass: 4·B·H·L·S·D forward, 2.5× that backward, halved for causal. */
  readonly flops: number;
  readonly repeats: number | null;
  readonly samplesMs: readonly number[] | null;
  /** math's time ÷ this backend's (how many times faster than math), where both ran; null otherwise. */
  readonly speedupVsMath: number | null;
  /** Forward only: max |out − math's out| on the same inputs, where both ran and --no-compare was not given. */
  readonly maxAbsDiffVsMath: number | null;
  /** The padded key lengths used (padding options) or the packed sequences' lengths (varlen), else null. */
  readonly keyLengths: readonly number[] | null;
  /** `--profile`: the pass's GPU time per kernel (null without it, or where the pass did not run). */
  readonly profile: PassProfile | null;
}

export interface TileReport {
  readonly dtype: BenchDType;
  readonly headDim: number;
  /** The tiles flash runs this head dim with on this device: chooseTiles' choice, with the device's tuned forward
   * and backward shapes where `--tune` (tuneFlashForward, tuneFlashBackward) made them (null: flash cannot run it). */
  readonly tiles: FlashTiles | null;
  /** The matrix dQ and dK/dV shapes its backward takes (matrixBackwardShapes; null: not on subgroup matrices). */
  readonly matrixBackward: MatrixBackwardShapes | null;
  /** The dQ kernel's shape where the tiled backward stores dS (storedQueryShape; null: no tiled dK/dV). */
  readonly storedQuery: StoredQueryShape | null;
}

export interface KernelBenchResult {
  readonly timing: TimingMethod;
  /** Timestamps arrived quantised (Dawn's 65.536 µs rounding); samples are long enough to make that small. */
  readonly timestampsQuantized: boolean;
  readonly tiles: readonly TileReport[];
  readonly records: readonly KernelRecord[];
}

export interface KernelBenchHooks {
  /** Called once per shape, dtype and option set, with that case's records (speedups filled in). */
  onCase?(records: readonly KernelRecord[]): void;
}

/** Largest GPU memory the calls of one sample may hold before it is submitted (pooled outputs and scratch). */
const SAMPLE_MEMORY_BYTES = 256 * 2 ** 20;
const MAX_REPEATS = 100;
/** Outputs above this many elements are not read back for the comparison with math. */
const MAX_COMPARED_ELEMENTS = 2 ** 25;

const firstLine = (error: unknown) => (error instanceof Error ? error.message : String(error)).split('\n').filter(Boolean).join(' ');

/** Bytes one call allocates, counted at B·N rows (packed varlen has fewer: an upper bound for it). */
function bytesPerCall(shape: BenchShape, dtype: BenchDType, backend: BackendName, pass: Pass): number {
  const element = dtype === 'f16' ? 2 : 4;
  const tensorBytes = shape.batch * shape.heads * shape.length * shape.headDim * element;
  const rows = shape.batch * shape.heads * shape.length;
  const outputs = pass === 'forward' ? tensorBytes + rows * 8 : 3 * tensorBytes + 3 * rows * shape.headDim * 4;
  const scores = backend === 'math' ? rows * shape.length * 4 : 0;
  return outputs + scores;
}

function describeFailure(error: unknown): string {
  return error instanceof ResourceLimitError ? `refused: ${firstLine(error)}` : `error: ${error instanceof Error ? `${error.name}: ` : ''}${firstLine(error)}`;
}

interface CaseContext {
  readonly device: Device;
  readonly config: KernelBenchConfig;
  readonly method: TimingMethod;
  readonly shape: BenchShape;
  readonly dtype: BenchDType;
  readonly set: OptionSet;
  readonly inputs: BenchInputs;
}

async function measurePass(context: CaseContext, backend: KernelBackend, pass: Pass): Promise<Omit<KernelRecord, 'speedupVsMath' | 'maxAbsDiffVsMath'> & { quantized: boolean }> {
  const { device, config, method, shape, dtype, set, inputs } = context;
  const { q, k, v, gradOut, options } = inputs;
  const flops = forwardFlops(shape, set) * (pass === 'backward' ? BACKWARD_FLOP_FACTOR : 1);
  const base = { shape, dtype, option: set.name, backend: backend.name, pass, flops, keyLengths: inputs.keyLengths };
  const failed = (status: string) => ({ ...base, status, timing: null, ms: null, tflops: null, repeats: null, samplesMs: null, quantized: false, profile: null });
  const refusal = backend.refusal(q, k, v, options, pass);
  if (refusal) return failed(`refused: ${refusal}`);
  let forward: ForwardResult | undefined;
  try {
    if (pass === 'backward') {
      forward = backend.forward(q, k, v, options);
      await device.sync();
    }
    const saved = forward;
    const call =
      pass === 'forward'
        ? () => {
            const result = backend.forward(q, k, v, options);
            return [result.out, result.logsumexp];
          }
        : () => backend.backward(q, k, v, saved!, gradOut, options);
    const maxRepeats = Math.max(1, Math.min(MAX_REPEATS, Math.floor(SAMPLE_MEMORY_BYTES / bytesPerCall(shape, dtype, backend.name, pass))));
    const timingOptions = { warmup: config.warmup, warmupMs: config.warmupMs, iterations: config.iterations, sampleTargetMs: config.sampleTargetMs, maxRepeats };
    let timing = await timeCalls(device, method, call, timingOptions);
    // Timestamps that make no sense (zero, negative: a driver that does not write them) fall back to the clock.
    if (method === 'timestamp' && !(timing.ms > 0 && Number.isFinite(timing.ms))) timing = await timeCalls(device, 'wall-clock', call, timingOptions);
    if (!(timing.ms > 0) || !Number.isFinite(timing.ms)) {
      return failed(`error: measured ${timing.ms} ms per call with ${timing.method} timing`);
    }
    const profile = config.profile ? await profileCalls(device, call, timing.repeats) : null;
    return {
      ...base,
      status: 'ok',
      timing: timing.method,
      ms: timing.ms,
      tflops: flops / timing.ms / 1e9,
      repeats: timing.repeats,
      samplesMs: timing.samplesMs,
      quantized: timing.quantized,
      profile,
    };
  } catch (error) {
    await device.sync().catch(() => undefined);
    return failed(describeFailure(error));
  } finally {
    forward?.out.dispose();
    forward?.logsumexp.dispose();
  }
}

/** One forward output read back to the host, for the comparison with math. */
async function forwardOutput(context: CaseContext, backend: KernelBackend): Promise<Float32Array> {
  const { q, k, v, options } = context.inputs;
  const result = backend.forward(q, k, v, options);
  try {
    return (await result.out.toArray()) as Float32Array;
  } finally {
    result.out.dispose();
    result.logsumexp.dispose();
  }
}

async function runCase(context: CaseContext, backends: readonly KernelBackend[]): Promise<{ records: KernelRecord[]; quantized: boolean }> {
  const measured: (Awaited<ReturnType<typeof measurePass>>)[] = [];
  for (const backend of backends) for (const pass of PASSES) measured.push(await measurePass(context, backend, pass));
  const find = (backend: BackendName, pass: Pass) => measured.find((record) => record.backend === backend && record.pass === pass);
  const compared = new Map<BackendName, number>();
  // out has q's elements here (D = Dv): B·H·N·D, or the packed rows' total·H·D for varlen.
  const elements = context.inputs.q.size;
  const math = backends.find((backend) => backend.name === 'math');
  if (context.config.compare && math && find('math', 'forward')?.status === 'ok' && elements <= MAX_COMPARED_ELEMENTS) {
    const others = backends.filter((backend) => backend.name !== 'math' && find(backend.name, 'forward')?.status === 'ok');
    if (others.length > 0) {
      const reference = await forwardOutput(context, math);
      for (const backend of others) compared.set(backend.name, maxAbsDiff(await forwardOutput(context, backend), reference).value);
    }
  }
  const records = measured.map(({ quantized: _quantized, ...record }): KernelRecord => {
    const mathRecord = find('math', record.pass);
    const speedupVsMath =
      record.backend !== 'math' && record.ms !== null && mathRecord?.ms != null ? mathRecord.ms / record.ms : null;
    const maxAbsDiffVsMath = record.pass === 'forward' ? (compared.get(record.backend) ?? null) : null;
    return { ...record, speedupVsMath, maxAbsDiffVsMath };
  });
  return { records, quantized: measured.some((record) => record.quantized) };
}

/**
 * The tiles flash runs each dtype and head dim of the run with on this GPU device: chooseTiles' choice with the
 * device's tuned forward and backward shapes.
 */
export function flashTileReports(device: Device, config: Pick<KernelBenchConfig, 'dtypes' | 'shapes'>): TileReport[] {
  const tiles: TileReport[] = [];
  for (const dtype of config.dtypes) {
    for (const headDim of new Set(config.shapes.map((shape) => shape.headDim))) {
      // The benchmark's problems are contiguous: the matrix forward takes its direct form. (Packed varlen runs take
      // it only where flash can unpack their sequences into padded k and v copies; the report is the unpacked runs'.)
      const problem = { dtype, headDimQk: headDim, headDimV: headDim, directKeyValues: true };
      const [forward, backward] = [tunedForwardTiles(device.gpu, dtype, headDim, headDim), tunedBackwardShapes(device.gpu, dtype, headDim, headDim)];
      const chosen = chooseTiles(problem, device.caps, forward, backward);
      tiles.push({
        dtype,
        headDim,
        tiles: chosen,
        matrixBackward: chosen && matrixBackwardShapes(chosen, device.caps),
        storedQuery: chosen?.tiledKeyValue ? storedQueryShape(chosen.headDimQk, device.caps) : null,
      });
    }
  }
  return tiles;
}

/** Runs the whole benchmark on a GPU device. */
export async function runKernelBench(device: Device, config: KernelBenchConfig, hooks: KernelBenchHooks = {}): Promise<KernelBenchResult> {
  if (!device.isGpu) {
    throw new Error(`the kernel benchmark times WebGPU kernels, but the device is the CPU (${device.info.reason})`);
  }
  const method = timingMethodFor(device, config.timing);
  if (config.profile && method !== 'timestamp') {
    throw new InvalidArgumentError(`--profile times each kernel with GPU timestamps, which this device (${device.info.adapter}) lacks ('timestamp-query'): run without --profile`);
  }
  const limits = config.mathBudgetBytes === undefined ? {} : { memoryBudgetBytes: config.mathBudgetBytes };
  const backends = config.backends.map((name) => kernelBackend(name, device, limits));
  const tiles = flashTileReports(device, config);
  const records: KernelRecord[] = [];
  let quantized = false;
  let seed = 1;
  for (const shape of config.shapes) {
    for (const dtype of config.dtypes) {
      for (const set of config.optionSets) {
        const inputs = benchInputs(device, shape, dtype, set, (seed += 16));
        try {
          const result = await runCase({ device, config, method, shape, dtype, set, inputs }, backends);
          quantized ||= result.quantized;
          records.push(...result.records);
          hooks.onCase?.(result.records);
        } finally {
          inputs.dispose();
        }
      }
    }
  }
  return { timing: method, timestampsQuantized: quantized, tiles, records };
}
