/**
 * The cost model that picks among eligible backends. Per backend,
 *
 *   microseconds = launchMicroseconds + computedFlops / flopsPerMicrosecond
 *
 * where computedFlops = 2 · B · Hq · rows · S · (Dqk + Dv) counts the two matmuls (QKᵀ and PV) over the rows the
 * kernel really computes: flash processes query rows in lanes of `flashRowGranularity` (on lavapipe a workgroup
 * with one live row costs as much as one with 8), so decode shapes pay for padded rows there; split-KV and math
 * compute exactly L rows. The constants were fitted to measurements (CALIBRATION below; the runs are in the
 * README); on lavapipe memory traffic never dominated, so the model has no bandwidth term. Only the ranking matters.
 */
import type { AttentionProblem } from '@webattn/tensor';

export interface BackendCalibration {
  /** Fixed cost of a call: dispatches, temporary buffers, the submit (measured on the smallest shape). */
  readonly launchMicroseconds: number;
  /** Sustained rate on the counted (padded) flops. */
  readonly flopsPerMicrosecond: number;
}

export interface CostCalibration {
  readonly device: string;
  /** Query rows flash pays for at least (and in multiples of). */
  readonly flashRowGranularity: number;
  readonly flash: BackendCalibration;
  readonly efficient: BackendCalibration;
  readonly math: BackendCalibration;
  readonly cpu: BackendCalibration;
}

/**
 * Fitted to `benchmarkDecode` runs on Mesa lavapipe (llvmpipe, 2 CPU cores shared with other jobs), f32, median of
 * 5 calls each, 2026-11-25 — the table in README.md ("Cost model"). Fitted rates: flash 215–272 flop/µs on padded
 * rows, split-KV 112–186, math 173–220, cpu (float64 reference on CPU tensors) 140–475; launch costs from the
 * smallest shapes (flash 1.0 ms, math 6.0 ms). cpu is never compared with the others (it alone takes CPU tensors).
 */
export const CALIBRATION: CostCalibration = {
  device: 'lavapipe (llvmpipe), 2 cores',
  flashRowGranularity: 8,
  flash: { launchMicroseconds: 1000, flopsPerMicrosecond: 230 },
  efficient: { launchMicroseconds: 1000, flopsPerMicrosecond: 150 },
  math: { launchMicroseconds: 6000, flopsPerMicrosecond: 190 },
  cpu: { launchMicroseconds: 0, flopsPerMicrosecond: 150 },
};

export interface CostEstimate {
  /** The flops the kernel computes (padded rows included). */
  readonly flops: number;
  readonly microseconds: number;
}

/** 2 · B · Hq · rows · S · (Dqk + Dv): QKᵀ and PV over `rows` query rows per head. */
function matmulFlops(problem: AttentionProblem, rows: number): number {
  return 2 * problem.batch * problem.queryHeads * rows * problem.keyLength * (problem.headDimQk + problem.headDimV);
}

function estimate(backend: BackendCalibration, flops: number): CostEstimate {
  return { flops, microseconds: backend.launchMicroseconds + flops / backend.flopsPerMicrosecond };
}

export function estimateFlash(problem: AttentionProblem, calibration = CALIBRATION): CostEstimate {
  const granularity = calibration.flashRowGranularity;
  const rows = Math.ceil(problem.queryLength / granularity) * granularity;
  return estimate(calibration.flash, matmulFlops(problem, rows));
}

export function estimateSplitKv(problem: AttentionProblem, calibration = CALIBRATION): CostEstimate {
  return estimate(calibration.efficient, matmulFlops(problem, problem.queryLength));
}

export function estimateMath(problem: AttentionProblem, calibration = CALIBRATION): CostEstimate {
  return estimate(calibration.math, matmulFlops(problem, problem.queryLength));
}

export function estimateCpu(problem: AttentionProblem, calibration = CALIBRATION): CostEstimate {
  return estimate(calibration.cpu, matmulFlops(problem, problem.queryLength));
}
