/**
 * The cost model that picks among eligible backends: a roofline estimate per backend,
 *
 *   microseconds = launchMicroseconds + max(computedFlops / (flopsPerMicrosecond · occupancy),
 *                                           bytes / bytesPerMicrosecond)
 *   occupancy    = min(1, workgroups / parallelSlots)
 *
 * computedFlops counts QKᵀ and PV, 2 · B · Hq · rows · S · (Dqk + Dv), over the rows a kernel really computes:
 * flash runs one workgroup per tile of query rows (16–128 rows by head dim and device), so a workgroup pays for
 * `flashRowGranularity` rows at least (8 on lavapipe, its SIMD width; 64 on a GPU, fitted on the earlier
 * 64-row kernels and not refitted for the tiled ones) — the decode-shape weakness split-KV exists
 * for. bytes counts what each kernel reads and writes (K and V once per query head for split-KV and math; math
 * also writes and re-reads the f32 L×S scores four times). Every constant is fitted to measurements: see the two
 * calibrations below and the README's tables. Only the ranking matters.
 */
import type { AttentionProblem } from '@webattn/tensor';

export interface BackendCalibration {
  /** Fixed cost of one call: dispatches, temporary buffers, submit (fitted on the smallest shapes). */
  readonly launchMicroseconds: number;
  /** Sustained arithmetic rate on the counted flops at full occupancy. */
  readonly flopsPerMicrosecond: number;
  /** Sustained memory traffic. */
  readonly bytesPerMicrosecond: number;
}

export interface CostCalibration {
  readonly device: string;
  /** Workgroups that keep the device busy. */
  readonly parallelSlots: number;
  /** Query rows a flash workgroup pays for at least (and in multiples of). */
  readonly flashRowGranularity: number;
  readonly flash: BackendCalibration;
  readonly efficient: BackendCalibration;
  readonly math: BackendCalibration;
  readonly cpu: BackendCalibration;
}

/** Host JavaScript (float64 reference on CPU tensors): 140–475 flop/µs measured; never compared with others. */
const CPU_REFERENCE: BackendCalibration = { launchMicroseconds: 0, flopsPerMicrosecond: 150, bytesPerMicrosecond: Infinity };

/**
 * Software rasterisers (Mesa lavapipe/llvmpipe, SwiftShader): fitted to benchmarkDecode on lavapipe, 2 CPU cores
 * shared with other jobs, f32, median of 5 (README, "lavapipe"). Fitted rates: flash 215–272 flop/µs on padded
 * rows, split-KV 112–186, math 173–220; launch from the smallest shapes. Memory traffic never bound (the "GPU
 * memory" is host RAM), so bandwidth is unbounded here.
 */
export const SOFTWARE_CALIBRATION: CostCalibration = {
  device: 'lavapipe (llvmpipe), 2 CPU cores',
  parallelSlots: 2,
  flashRowGranularity: 8,
  flash: { launchMicroseconds: 1000, flopsPerMicrosecond: 230, bytesPerMicrosecond: Infinity },
  efficient: { launchMicroseconds: 1000, flopsPerMicrosecond: 150, bytesPerMicrosecond: Infinity },
  math: { launchMicroseconds: 6000, flopsPerMicrosecond: 190, bytesPerMicrosecond: Infinity },
  cpu: CPU_REFERENCE,
};

/**
 * Hardware GPUs: fitted to benchmarkDecode on an NVIDIA H100 80GB (Dawn, Vulkan, driver 580.159.04), f32, median
 * of 5 (README, "H100"). Flash: 1.5 Tflop/s at full occupancy (prefill B4 H16 L2048 D64: 46.6 ms) with ~94
 * workgroups in flight; split-KV moves ~376 GB/s and math ~263 GB/s counting K and V once per query head (decode
 * B4 Hq32 Hkv8 S16384 D128: 6.7 and 9.5 ms; GQA re-reads hit the cache); launch ≈ 0.8–1.2 ms per call including
 * submit and sync (smallest shapes). Flash's bandwidth is taken equal to split-KV's (it never bound).
 */
export const GPU_CALIBRATION: CostCalibration = {
  device: 'NVIDIA H100 80GB (Dawn, Vulkan)',
  parallelSlots: 94,
  flashRowGranularity: 64,
  flash: { launchMicroseconds: 800, flopsPerMicrosecond: 1_500_000, bytesPerMicrosecond: 376_000 },
  efficient: { launchMicroseconds: 1000, flopsPerMicrosecond: 1_500_000, bytesPerMicrosecond: 376_000 },
  math: { launchMicroseconds: 1200, flopsPerMicrosecond: 1_500_000, bytesPerMicrosecond: 263_000 },
  cpu: CPU_REFERENCE,
};

/**
 * Software adapters report themselves in their adapter info (Dawn: vendor 'mesa', architecture 'software'); the
 * CPU device's adapter is 'cpu' (only the cpu backend runs there, so the choice of calibration does not matter).
 */
const SOFTWARE_ADAPTER = /llvmpipe|lavapipe|swiftshader|software|^cpu$/i;

/** The calibration for a device, from its adapter description (software rasterisers vs hardware GPUs). */
export function calibrationFor(adapter: string): CostCalibration {
  return SOFTWARE_ADAPTER.test(adapter) ? SOFTWARE_CALIBRATION : GPU_CALIBRATION;
}

export interface CostEstimate {
  /** The flops the kernel computes (padded rows included). */
  readonly flops: number;
  readonly bytes: number;
  readonly workgroups: number;
  readonly microseconds: number;
}

/** 2 · B · Hq · rows · S · (Dqk + Dv): QKᵀ and PV over `rows` query rows per head. */
function matmulFlops(problem: AttentionProblem, rows: number): number {
  return 2 * problem.batch * problem.queryHeads * rows * problem.keyLength * (problem.headDimQk + problem.headDimV);
}

function elementBytes(problem: AttentionProblem): number {
  return problem.dtype === 'f16' ? 2 : 4;
}

/** q and out once; K and V once per query head (GQA heads each stream their kv head). */
function streamedBytes(problem: AttentionProblem): number {
  const { batch, queryHeads, queryLength, keyLength, headDimQk, headDimV } = problem;
  const e = elementBytes(problem);
  return batch * queryHeads * (queryLength * (headDimQk + headDimV) + keyLength * (headDimQk + headDimV)) * e;
}

function roofline(
  calibration: CostCalibration,
  backend: BackendCalibration,
  counts: { flops: number; bytes: number; workgroups: number },
): CostEstimate {
  const occupancy = Math.min(1, counts.workgroups / calibration.parallelSlots);
  const compute = counts.flops / (backend.flopsPerMicrosecond * occupancy);
  const memory = counts.bytes / backend.bytesPerMicrosecond;
  return { ...counts, microseconds: backend.launchMicroseconds + Math.max(compute, memory) };
}

export function estimateFlash(problem: AttentionProblem, calibration = SOFTWARE_CALIBRATION): CostEstimate {
  const granularity = calibration.flashRowGranularity;
  const queryTiles = Math.ceil(problem.queryLength / 64);
  const rows = Math.ceil(problem.queryLength / granularity) * granularity;
  return roofline(calibration, calibration.flash, {
    flops: matmulFlops(problem, rows),
    // Each 64-row query tile streams all of its head's keys and values.
    bytes: streamedBytes(problem) * queryTiles,
    workgroups: problem.batch * problem.queryHeads * queryTiles,
  });
}

export function estimateSplitKv(problem: AttentionProblem, calibration = SOFTWARE_CALIBRATION): CostEstimate {
  const rows = problem.batch * problem.queryHeads * problem.queryLength;
  const chunks = Math.min(Math.ceil(problem.keyLength / 64), Math.max(Math.ceil(problem.keyLength / 512), Math.ceil(256 / rows)));
  return roofline(calibration, calibration.efficient, {
    flops: matmulFlops(problem, problem.queryLength),
    bytes: streamedBytes(problem) + 2 * rows * chunks * (problem.headDimV + 2) * 4,
    workgroups: rows * chunks,
  });
}

export function estimateMath(problem: AttentionProblem, calibration = SOFTWARE_CALIBRATION): CostEstimate {
  const scores = problem.batch * problem.queryHeads * problem.queryLength * problem.keyLength;
  return roofline(calibration, calibration.math, {
    flops: matmulFlops(problem, problem.queryLength),
    // The f32 scores are written, read and written by softmax, and read by PV.
    bytes: streamedBytes(problem) + 4 * scores * 4,
    workgroups: Math.ceil(scores / 64),
  });
}

export function estimateCpu(problem: AttentionProblem, calibration = SOFTWARE_CALIBRATION): CostEstimate {
  return roofline(calibration, calibration.cpu, {
    flops: matmulFlops(problem, problem.queryLength),
    bytes: 0,
    workgroups: calibration.parallelSlots,
  });
}
