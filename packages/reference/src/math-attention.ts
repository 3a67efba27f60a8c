import {
  DTypeError,
  DeviceMismatchError,
  InvalidArgumentError,
  ResourceLimitError,
  ShapeError,
  describeAttention,
  emptyTensor,
  formatShape,
  type AttentionLayout,
  type AttentionOptions,
  type AttentionProblem,
  type Device,
  type Tensor,
} from '@webattn/tensor';
import { sequenceBounds } from './attention-geometry';
import {
  DEFAULT_MATH_MEMORY_BUDGET_BYTES,
  checkMath,
  mathMemoryBytes,
  mathScoresBytes,
  type MathLimits,
} from './check-math';
import {
  encodePackHalf,
  encodeRowStatistics,
  encodeScoreGradients,
  encodeScores,
  encodeSoftmax,
  encodeWeightsTimes,
  encodeWeightsTransposedTimes,
} from './math-kernels';

export interface MathAttentionResult {
  /** [B, Hq, L, Dv] (packed varlen: [totalQ, Hq, Dv]) in q's dtype. */
  readonly out: Tensor;
  /** f32 [B, Hq, L]; −∞ on fully masked rows (and rows past a packed sequence's end). */
  readonly logsumexp: Tensor;
  /** With needWeights: f32 [B, Hq, L, S], the weights after dropout. */
  readonly weights?: Tensor;
}

export interface MathAttentionGradients {
  readonly dq: Tensor;
  readonly dk: Tensor;
  readonly dv: Tensor;
}

/** Read at call time: GPUBufferUsage exists only once WebGPU is loaded. */
const storageUsage = () => GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC;

function assertRunnable(problem: AttentionProblem, device: Device, limits: MathLimits): void {
  if (!device.isGpu) {
    throw new DeviceMismatchError('the math backend runs on a WebGPU device, but the tensors are on the CPU; use cpuAttention');
  }
  const rejections = checkMath(problem, device.caps, limits);
  const memory = rejections.find((r) => r.check === 'scoresBytes' || r.check === 'memoryBytes');
  if (memory) {
    const scores = memory.check === 'scoresBytes';
    throw new ResourceLimitError(
      memory.message,
      scores ? mathScoresBytes(problem) : mathMemoryBytes(problem),
      scores ? device.caps.maxStorageBufferBindingSize : (limits.memoryBudgetBytes ?? DEFAULT_MATH_MEMORY_BUDGET_BYTES),
    );
  }
  if (rejections.length > 0) throw new InvalidArgumentError(rejections.map((r) => r.message).join('; '));
}

/** Per-batch sequence bounds as the kernels read them: 6 u32 per batch (shift as i32 bits). */
function uploadSequences(device: Device, problem: AttentionProblem, options: AttentionOptions): GPUBuffer {
  const bounds = sequenceBounds(problem, options);
  const words = new Int32Array(bounds.length * 6);
  bounds.forEach((s, b) => words.set([s.queryStart, s.queryRows, s.keyStart, s.keyRows, s.keyValid, s.diagonalShift], b * 6));
  const buffer = device.pool.acquire(words.byteLength, storageUsage(), 'math sequences');
  device.gpu.queue.writeBuffer(buffer, 0, words);
  return buffer;
}

function maskBuffer(device: Device, options: AttentionOptions): { buffer: GPUBuffer; pooled: boolean } {
  if (options.attnMask) return { buffer: options.attnMask.buffer, pooled: false };
  return { buffer: device.pool.acquire(16, storageUsage(), 'math no mask'), pooled: true };
}

/** Contiguous layout of a q-like ([B, H, N, D], or packed [total, H, D]) output. */
function contiguousLayout(problem: AttentionProblem, heads: number, rows: number, dim: number): AttentionLayout {
  return problem.varlen
    ? { batch: 0, head: dim, sequence: heads * dim, dim: 1, offset: 0 }
    : { batch: heads * rows * dim, head: rows * dim, sequence: dim, dim: 1, offset: 0 };
}

function tensorLayout(t: Tensor, varlen: boolean): AttentionLayout {
  const s = t.strides;
  return varlen
    ? { batch: 0, sequence: s[0]!, head: s[1]!, dim: s[2]!, offset: t.offset }
    : { batch: s[0]!, head: s[1]!, sequence: s[2]!, dim: s[3]!, offset: t.offset };
}

/**
 * A result tensor in q's dtype that kernels write as f32: f32 results are written in place; f16 results go
 * through a pooled f32 buffer that `complete()` packs into the tensor.
 */
function resultTarget(device: Device, problem: AttentionProblem, shape: number[], label: string) {
  const tensor = emptyTensor(device, problem.dtype, shape, label);
  if (problem.dtype === 'f32') return { tensor, staging: tensor.buffer, complete: () => tensor };
  const count = shape.reduce((a, b) => a * b, 1);
  const staging = device.pool.acquire(count * 4, storageUsage(), `${label} f32`);
  return {
    tensor,
    staging,
    complete: () => {
      encodePackHalf(device, staging, tensor.buffer, count);
      device.pool.release(staging);
      return tensor;
    },
  };
}

function shapes(problem: AttentionProblem, totals: { q: number; k: number }) {
  const { batch, queryHeads, kvHeads, queryLength, keyLength, headDimQk, headDimV } = problem;
  return problem.varlen
    ? { q: [totals.q, queryHeads, headDimQk], k: [totals.k, kvHeads, headDimQk], v: [totals.k, kvHeads, headDimV], out: [totals.q, queryHeads, headDimV] }
    : {
        q: [batch, queryHeads, queryLength, headDimQk],
        k: [batch, kvHeads, keyLength, headDimQk],
        v: [batch, kvHeads, keyLength, headDimV],
        out: [batch, queryHeads, queryLength, headDimV],
      };
}

/**
 * The WGSL math backend: materialises S = scale·QKᵀ (softcap, mask) in a GPU buffer, softmax with every mask
 * kind, dropout (the attention dropout stream), then P·V. f32 or f16 inputs, f32 accumulation. Refuses, with a
 * ResourceLimitError stating the bytes, any problem whose scores do not fit one storage binding or the memory budget.
 */
export function mathAttention(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  options: AttentionOptions = {},
  limits: MathLimits = {},
): MathAttentionResult {
  const problem = describeAttention(q, k, v, options);
  const device = q.device;
  assertRunnable(problem, device, limits);
  const { batch, queryHeads, queryLength, keyLength } = problem;
  const sizes = shapes(problem, { q: q.shape[0]!, k: k.shape[0]! });
  const sequences = uploadSequences(device, problem, options);
  const mask = maskBuffer(device, options);
  const weights = emptyTensor(device, 'f32', [batch, queryHeads, queryLength, keyLength], 'math weights');
  const logsumexp = emptyTensor(device, 'f32', [batch, queryHeads, queryLength], 'math logsumexp');
  encodeScores(device, problem, { q: q.buffer, k: k.buffer, mask: mask.buffer, sequences, scores: weights.buffer });
  encodeSoftmax(device, problem, { scores: weights.buffer, logsumexp: logsumexp.buffer });
  const target = resultTarget(device, problem, sizes.out, 'math out');
  encodeWeightsTimes(device, problem, {
    weights: weights.buffer,
    x: v.buffer,
    xLayout: problem.layout.v,
    dim: problem.headDimV,
    sequences,
    out: target.staging,
    outLayout: problem.layout.out,
  });
  const out = target.complete();
  device.pool.release(sequences);
  if (mask.pooled) device.pool.release(mask.buffer);
  if (!problem.needWeights) {
    weights.dispose();
    return { out, logsumexp };
  }
  return { out, logsumexp, weights };
}

function assertLike(name: string, t: Tensor, shape: readonly number[], q: Tensor): void {
  t.assertUsable(name);
  if (t.device !== q.device) throw new DeviceMismatchError(`${name} is on another device than q; move it with .to(device)`);
  if (t.shape.length !== shape.length || t.shape.some((size, axis) => size !== shape[axis])) {
    throw new ShapeError(`${name} ${formatShape(t.shape)} must have shape ${formatShape(shape)}`);
  }
}

/**
 * Gradients of the math backend: recomputes the weights after dropout for dV, then d score = P·(dP − Δ) per
 * element in the scores buffer, and dQ = dS·K, dK = dSᵀ·Q. `logsumexp` is the forward's. Pass the forward's
 * options (the same dropoutSeed).
 */
export function mathAttentionBackward(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  out: Tensor,
  logsumexp: Tensor,
  gradOut: Tensor,
  options: AttentionOptions = {},
  limits: MathLimits = {},
): MathAttentionGradients {
  const problem = describeAttention(q, k, v, { ...options, requiresGrad: true });
  const device = q.device;
  assertRunnable(problem, device, limits);
  const sizes = shapes(problem, { q: q.shape[0]!, k: k.shape[0]! });
  const { batch, queryHeads, queryLength, keyLength, kvHeads, headDimQk, headDimV } = problem;
  assertLike('out', out, sizes.out, q);
  assertLike('gradOut', gradOut, sizes.out, q);
  assertLike('logsumexp', logsumexp, [batch, queryHeads, queryLength], q);
  for (const [name, t] of [['out', out], ['gradOut', gradOut]] as const) {
    if (t.dtype !== problem.dtype) throw new DTypeError(`${name} has dtype ${t.dtype}, need ${problem.dtype} like q`);
  }
  if (logsumexp.dtype !== 'f32' || !logsumexp.isContiguous() || logsumexp.offset !== 0) {
    throw new InvalidArgumentError('logsumexp must be the forward\'s contiguous f32 tensor');
  }
  const rows = batch * queryHeads * queryLength;
  const sequences = uploadSequences(device, problem, options);
  const mask = maskBuffer(device, options);
  const scores = device.pool.acquire(rows * keyLength * 4, storageUsage(), 'math backward scores');
  const scratchLse = device.pool.acquire(rows * 4, storageUsage(), 'math backward logsumexp');
  const stats = device.pool.acquire(rows * 8, storageUsage(), 'math backward row statistics');
  const dqTarget = resultTarget(device, problem, sizes.q, 'math dq');
  const dkTarget = resultTarget(device, problem, sizes.k, 'math dk');
  const dvTarget = resultTarget(device, problem, sizes.v, 'math dv');
  const outLayout = tensorLayout(out, problem.varlen);
  const gradLayout = tensorLayout(gradOut, problem.varlen);
  const qLayoutOut = contiguousLayout(problem, queryHeads, queryLength, headDimQk);

  // Weights after dropout, exactly as the forward made them, for dV = Pᵀ·dO.
  encodeScores(device, problem, { q: q.buffer, k: k.buffer, mask: mask.buffer, sequences, scores });
  encodeSoftmax(device, problem, { scores, logsumexp: scratchLse });
  encodeWeightsTransposedTimes(device, problem, {
    weights: scores,
    x: gradOut.buffer,
    xLayout: gradLayout,
    dim: headDimV,
    sequences,
    out: dvTarget.staging,
    outLayout: contiguousLayout(problem, kvHeads, keyLength, headDimV),
  });
  encodeRowStatistics(
    device,
    problem,
    { logsumexp: logsumexp.buffer, out: out.buffer, grad: gradOut.buffer, sequences, stats },
    { out: outLayout, grad: gradLayout },
  );
  encodeScoreGradients(
    device,
    problem,
    { q: q.buffer, k: k.buffer, v: v.buffer, mask: mask.buffer, sequences, stats, grad: gradOut.buffer, scoreGradients: scores },
    gradLayout,
  );
  encodeWeightsTimes(device, problem, {
    weights: scores,
    x: k.buffer,
    xLayout: problem.layout.k,
    dim: headDimQk,
    sequences,
    out: dqTarget.staging,
    outLayout: qLayoutOut,
  });
  encodeWeightsTransposedTimes(device, problem, {
    weights: scores,
    x: q.buffer,
    xLayout: problem.layout.q,
    dim: headDimQk,
    sequences,
    out: dkTarget.staging,
    outLayout: contiguousLayout(problem, kvHeads, keyLength, headDimQk),
  });
  const dq = dqTarget.complete();
  const dk = dkTarget.complete();
  const dv = dvTarget.complete();
  for (const buffer of [sequences, scores, scratchLse, stats]) device.pool.release(buffer);
  if (mask.pooled) device.pool.release(mask.buffer);
  return { dq, dk, dv };
}
