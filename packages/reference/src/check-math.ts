import { rejection, type AttentionProblem, type DeviceCaps, type Rejection } from '@webattn/tensor';

/** Default cap on the memory one math-backend call may allocate (the scores matrix dominates). */
export const DEFAULT_MATH_MEMORY_BUDGET_BYTES = 1024 * 1024 * 1024;

export interface MathLimits {
  /** Bytes one call may allocate on the GPU (default 1 GiB). */
  readonly memoryBudgetBytes?: number;
}

/** Bytes of the materialised scores matrix [B, Hq, L, S] in f32. */
export function mathScoresBytes(problem: AttentionProblem): number {
  return problem.batch * problem.queryHeads * problem.queryLength * problem.keyLength * 4;
}

/** Bytes one call allocates: scores, f32 staging of outputs (and gradients), row statistics. */
export function mathMemoryBytes(problem: AttentionProblem): number {
  const rows = problem.batch * problem.queryHeads * problem.queryLength;
  const out = rows * problem.headDimV * 4;
  const gradients = problem.requiresGrad
    ? (rows * problem.headDimQk + 2 * problem.batch * problem.kvHeads * problem.keyLength * (problem.headDimQk + problem.headDimV)) * 4 +
      rows * 8
    : 0;
  return mathScoresBytes(problem) + out + rows * 4 + gradients;
}

const STORAGE_BUFFERS_NEEDED = 8;

/**
 * Why the WGSL math backend cannot run a problem (empty when it can): it needs a WebGPU device with 8 storage
 * buffers per stage, a scores matrix that fits one storage binding, and a total within the memory budget.
 */
export function checkMath(problem: AttentionProblem, caps: DeviceCaps, limits: MathLimits = {}): Rejection[] {
  const rejections: Rejection[] = [];
  if (caps.maxStorageBuffersPerShaderStage < STORAGE_BUFFERS_NEEDED) {
    rejections.push(
      rejection(
        'math',
        'storageBuffers',
        caps.maxStorageBuffersPerShaderStage,
        `≥ ${STORAGE_BUFFERS_NEEDED}`,
        caps.maxStorageBuffersPerShaderStage === 0 ? 'the CPU device has no WebGPU; use the cpu backend' : 'storage buffers per shader stage',
      ),
    );
  }
  const scores = mathScoresBytes(problem);
  const shape = `[${problem.batch}, ${problem.queryHeads}, ${problem.queryLength}, ${problem.keyLength}]`;
  if (scores > caps.maxStorageBufferBindingSize) {
    rejections.push(
      rejection(
        'math',
        'scoresBytes',
        scores,
        `≤ ${caps.maxStorageBufferBindingSize} (maxStorageBufferBindingSize)`,
        `scores ${shape} in f32; use the flash backend or a shorter sequence`,
      ),
    );
  }
  const budget = limits.memoryBudgetBytes ?? DEFAULT_MATH_MEMORY_BUDGET_BYTES;
  const total = mathMemoryBytes(problem);
  if (total > budget) {
    rejections.push(
      rejection('math', 'memoryBytes', total, `≤ ${budget} (memory budget)`, `scores ${shape} in f32 dominate; raise memoryBudgetBytes or use flash`),
    );
  }
  return rejections;
}
