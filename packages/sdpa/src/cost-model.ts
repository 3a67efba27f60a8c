/**
 * The cost model that picks among eligible backends: a roofline estimate per backend,
 *
 *   microseconds = launches · launchMicroseconds + max(flops / flopsPerMicrosecond / occupancy,
 *                                                     bytes / bytesPerMicrosecond)
 *
 * where flops and bytes are counted per backend from the problem (what each kernel really reads, writes and
 * computes), and occupancy = min(1, workgroups / parallelSlots) says how much of the device one dispatch keeps
 * busy (flash runs one workgroup per 64-row query tile, so a decode shape with few rows leaves it idle; split-KV
 * also splits the keys). The constants are measured, not guessed: see CALIBRATION below and the README.
 * Only the ranking matters; the numbers are never shown as promises.
 */
import type { AttentionProblem } from '@webattn/tensor';

export interface BackendCalibration {
  /** Fixed cost of one dispatch (encode, bind, launch, sync share). */
  readonly launchMicroseconds: number;
  /** Sustained arithmetic rate of this backend's kernels at full occupancy. */
  readonly flopsPerMicrosecond: number;
  /** Sustained memory traffic. */
  readonly bytesPerMicrosecond: number;
}

export interface CostCalibration {
  readonly device: string;
  /** Workgroups needed to keep the device busy. */
  readonly parallelSlots: number;
  readonly flash: BackendCalibration;
  readonly efficient: BackendCalibration;
  readonly math: BackendCalibration;
  readonly cpu: BackendCalibration;
}

/**
 * Measured with `benchmarkDecode` / `calibrate` (src/benchmark.ts) on Mesa lavapipe (llvmpipe, 2 shared cores);
 * the README lists the runs these numbers come from.
 */
export const CALIBRATION: CostCalibration = {
  device: 'lavapipe (llvmpipe), 2 cores',
  parallelSlots: 8,
  flash: { launchMicroseconds: 150, flopsPerMicrosecond: 400, bytesPerMicrosecond: 2000 },
  efficient: { launchMicroseconds: 300, flopsPerMicrosecond: 400, bytesPerMicrosecond: 2000 },
  math: { launchMicroseconds: 600, flopsPerMicrosecond: 200, bytesPerMicrosecond: 1000 },
  cpu: { launchMicroseconds: 0, flopsPerMicrosecond: 100, bytesPerMicrosecond: 4000 },
};

/** Rows per flash workgroup (the query tile: one thread per row, 64 threads). */
export const FLASH_QUERY_TILE = 64;

export interface CostEstimate {
  readonly flops: number;
  readonly bytes: number;
  readonly workgroups: number;
  readonly launches: number;
  readonly microseconds: number;
}

function elementBytes(problem: AttentionProblem): number {
  return problem.dtype === 'f16' ? 2 : 4;
}

/** Fraction of score entries that are computed at all (causal skips about half of the tiles). */
function computedFraction(problem: AttentionProblem): number {
  return problem.causal ? 0.5 : 1;
}

function scoreCount(problem: AttentionProblem): number {
  return problem.batch * problem.queryHeads * problem.queryLength * problem.keyLength;
}

function ioBytes(problem: AttentionProblem): { q: number; kv: number; out: number } {
  const e = elementBytes(problem);
  const { batch, queryHeads, kvHeads, queryLength, keyLength, headDimQk, headDimV } = problem;
  return {
    q: batch * queryHeads * queryLength * headDimQk * e,
    kv: batch * kvHeads * keyLength * (headDimQk + headDimV) * e,
    out: batch * queryHeads * queryLength * headDimV * e,
  };
}

function roofline(
  calibration: CostCalibration,
  backend: BackendCalibration,
  counts: { flops: number; bytes: number; workgroups: number; launches: number },
): CostEstimate {
  const occupancy = Math.min(1, counts.workgroups / calibration.parallelSlots);
  const compute = counts.flops / backend.flopsPerMicrosecond / Math.max(occupancy, 1e-9);
  const memory = counts.bytes / backend.bytesPerMicrosecond;
  return { ...counts, microseconds: counts.launches * backend.launchMicroseconds + Math.max(compute, memory) };
}

/** Matmul flops of forward (QKᵀ and PV): 2·L·S·(Dqk + Dv) per head; backward about 2.5× that. */
function attentionMatmulFlops(problem: AttentionProblem): number {
  return 2 * scoreCount(problem) * (problem.headDimQk + problem.headDimV) * computedFraction(problem);
}

export function estimateFlash(problem: AttentionProblem, calibration = CALIBRATION): CostEstimate {
  const io = ioBytes(problem);
  const queryTiles = Math.ceil(problem.queryLength / FLASH_QUERY_TILE);
  return roofline(calibration, calibration.flash, {
    flops: attentionMatmulFlops(problem),
    // Each query tile streams all of its head's keys and values.
    bytes: io.q + io.out + io.kv * queryTiles * (problem.queryHeads / problem.kvHeads),
    workgroups: problem.batch * problem.queryHeads * queryTiles,
    launches: 1,
  });
}

/** Keys per split-KV chunk: as many chunks as fill ~256 workgroups, 64..512 keys each (@webattn/flash's plan). */
export function splitKvChunks(problem: AttentionProblem): number {
  const rows = Math.max(1, problem.batch * problem.queryHeads * problem.queryLength);
  const fewest = Math.ceil(problem.keyLength / 512);
  const most = Math.max(1, Math.ceil(problem.keyLength / 64));
  return Math.min(most, Math.max(fewest, Math.ceil(256 / rows)));
}

export function estimateSplitKv(problem: AttentionProblem, calibration = CALIBRATION): CostEstimate {
  const io = ioBytes(problem);
  const chunks = splitKvChunks(problem);
  const rows = problem.batch * problem.queryHeads * problem.queryLength;
  const partials = rows * chunks * (problem.headDimV + 2) * 4;
  return roofline(calibration, calibration.efficient, {
    flops: attentionMatmulFlops(problem),
    // Each (row, chunk) workgroup reads its chunk of keys and values: K and V once per query row.
    bytes: io.q + io.out + io.kv * (problem.queryHeads / problem.kvHeads) * problem.queryLength + 2 * partials,
    workgroups: rows * chunks,
    launches: 2,
  });
}

export function estimateMath(problem: AttentionProblem, calibration = CALIBRATION): CostEstimate {
  const io = ioBytes(problem);
  // S = QKᵀ written, softmax reads and writes it, PV reads it: four passes over an f32 L×S matrix per head.
  const scores = scoreCount(problem) * 4 * 4;
  return roofline(calibration, calibration.math, {
    flops: 2 * scoreCount(problem) * (problem.headDimQk + problem.headDimV),
    bytes: io.q + io.out + io.kv * Math.ceil(problem.queryLength / 16) + scores,
    workgroups: Math.ceil(scoreCount(problem) / 256),
    launches: 3,
  });
}

export function estimateCpu(problem: AttentionProblem, calibration = CALIBRATION): CostEstimate {
  const io = ioBytes(problem);
  return roofline(calibration, calibration.cpu, {
    flops: 2 * scoreCount(problem) * (problem.headDimQk + problem.headDimV),
    bytes: io.q + io.kv + io.out,
    workgroups: calibration.parallelSlots,
    launches: 1,
  });
}
