import {
  DTypeError,
  DeviceMismatchError,
  ShapeError,
  describeAttention,
  fromValues,
  formatShape,
  type AttentionOptions,
  type Tensor,
} from '@webattn/tensor';
import { referenceBackward, referenceForward } from './attention-reference';
import { hostViewOf } from './host-tensor';
import { planFromProblem, type ReferenceOptions } from './reference-plan';

export interface CpuAttentionResult {
  /** In q's dtype (f16 values rounded to half), on the CPU device. */
  readonly out: Tensor;
  /** f32 [B, Hq, L]. */
  readonly logsumexp: Tensor;
  readonly weights?: Tensor;
}

export interface CpuAttentionGradients {
  readonly dq: Tensor;
  readonly dk: Tensor;
  readonly dv: Tensor;
}

function planFor(q: Tensor, k: Tensor, v: Tensor, options: AttentionOptions) {
  const problem = describeAttention(q, k, v, options);
  if (q.device.isGpu) {
    throw new DeviceMismatchError('cpuAttention needs CPU tensors; these are on the GPU (use mathAttention, or .to(cpuDevice()))');
  }
  const { attnMask, ...rest } = options;
  const hostOptions: ReferenceOptions = { ...rest, ...(attnMask ? { attnMask: hostViewOf(attnMask) } : {}) };
  return planFromProblem(problem, hostViewOf(q), hostViewOf(k), hostViewOf(v), hostOptions);
}

/** The dispatcher's 'cpu' backend: the float64 oracle on CPU tensors, results as CPU tensors. */
export function cpuAttention(q: Tensor, k: Tensor, v: Tensor, options: AttentionOptions = {}): CpuAttentionResult {
  const plan = planFor(q, k, v, options);
  const result = referenceForward(plan, plan.problem.needWeights);
  const device = q.device;
  return {
    out: fromValues(device, plan.problem.dtype, result.out, result.outShape),
    logsumexp: fromValues(device, 'f32', result.logsumexp, result.logsumexpShape),
    ...(result.weights && result.weightsShape
      ? { weights: fromValues(device, 'f32', result.weights, result.weightsShape) }
      : {}),
  };
}

/**
 * Gradients on CPU tensors (float64 inside). `out` and `logsumexp` are accepted for the shared backward contract
 * and checked for shape; the oracle recomputes them.
 */
export function cpuAttentionBackward(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  out: Tensor,
  logsumexp: Tensor,
  gradOut: Tensor,
  options: AttentionOptions = {},
): CpuAttentionGradients {
  const plan = planFor(q, k, v, options);
  for (const [name, t, shape] of [
    ['out', out, plan.outShape],
    ['gradOut', gradOut, plan.outShape],
    ['logsumexp', logsumexp, [plan.problem.batch, plan.problem.queryHeads, plan.problem.queryLength]],
  ] as const) {
    t.assertUsable(name);
    if (t.device !== q.device) throw new DeviceMismatchError(`${name} is on another device than q`);
    if (t.shape.length !== shape.length || t.shape.some((size, axis) => size !== shape[axis])) {
      throw new ShapeError(`${name} ${formatShape(t.shape)} must have shape ${formatShape(shape)}`);
    }
    const dtype = name === 'logsumexp' ? 'f32' : plan.problem.dtype;
    if (t.dtype !== dtype) throw new DTypeError(`${name} has dtype ${t.dtype}, need ${dtype}${name === 'logsumexp' ? '' : ' like q'}`);
  }
  const grads = referenceBackward(plan, hostViewOf(gradOut));
  const device = q.device;
  const dtype = plan.problem.dtype;
  return {
    dq: fromValues(device, dtype, grads.dq, grads.dqShape),
    dk: fromValues(device, dtype, grads.dk, grads.dkShape),
    dv: fromValues(device, dtype, grads.dv, grads.dvShape),
  };
}
