/**
 * The attention backends the kernel benchmark compares, called directly (not through the dispatcher, so the
 * timing is the kernels' own): flash (@webattn/flash), math (the materialising WGSL reference of
 * @webattn/reference) and efficient (flash's split-KV decode kernels, forward only). Flash and math run packed
 * varlen too; split-KV does not read packed sequences, and its own check refuses them like its other limits.
 */
import { checkFlash, checkSplitKv, flashAttention, flashAttentionGrad, splitKvAttention } from '@webattn/flash';
import { mathAttention, mathAttentionBackward, type MathLimits } from '@webattn/reference';
import { describeAttention, type AttentionOptions, type Device, type Tensor } from '@webattn/tensor';
import type { BackendName } from './kernel-args';

export type Pass = 'forward' | 'backward';

export interface ForwardResult {
  readonly out: Tensor;
  readonly logsumexp: Tensor;
}

export interface KernelBackend {
  readonly name: BackendName;
  /**
   * Why the backend cannot run this pass (its own check's rejections), or null when it can. The math backend
   * has none here: it refuses by throwing ResourceLimitError when it is called, and the runner records that.
   */
  refusal(q: Tensor, k: Tensor, v: Tensor, options: AttentionOptions, pass: Pass): string | null;
  forward(q: Tensor, k: Tensor, v: Tensor, options: AttentionOptions): ForwardResult;
  backward(q: Tensor, k: Tensor, v: Tensor, forward: ForwardResult, gradOut: Tensor, options: AttentionOptions): readonly Tensor[];
}

function rejectionText(rejections: readonly { message: string }[]): string | null {
  return rejections.length > 0 ? rejections.map((rejection) => rejection.message).join('; ') : null;
}

const problemOf = (q: Tensor, k: Tensor, v: Tensor, options: AttentionOptions, pass: Pass) =>
  describeAttention(q, k, v, { ...options, requiresGrad: pass === 'backward' });

function flashBackend(device: Device): KernelBackend {
  return {
    name: 'flash',
    refusal: (q, k, v, options, pass) => rejectionText(checkFlash(problemOf(q, k, v, options, pass), device.caps)),
    forward: (q, k, v, options) => flashAttention(q, k, v, options),
    backward(q, k, v, forward, gradOut, options) {
      const { dq, dk, dv } = flashAttentionGrad(q, k, v, forward.out, forward.logsumexp, gradOut, options);
      return [dq, dk, dv];
    },
  };
}

function mathBackend(limits: MathLimits): KernelBackend {
  return {
    name: 'math',
    refusal: () => null,
    forward(q, k, v, options) {
      const { out, logsumexp } = mathAttention(q, k, v, options, limits);
      return { out, logsumexp };
    },
    backward(q, k, v, forward, gradOut, options) {
      const { dq, dk, dv } = mathAttentionBackward(q, k, v, forward.out, forward.logsumexp, gradOut, options, limits);
      return [dq, dk, dv];
    },
  };
}

function efficientBackend(device: Device): KernelBackend {
  return {
    name: 'efficient',
    refusal(q, k, v, options, pass) {
      // checkSplitKv rejects requiresGrad itself: the split-KV kernels are forward only.
      return rejectionText(checkSplitKv(problemOf(q, k, v, options, pass), device.caps));
    },
    forward: (q, k, v, options) => splitKvAttention(q, k, v, options),
    backward() {
      throw new Error('unreachable: checkSplitKv refuses every backward pass');
    },
  };
}

export function kernelBackend(name: BackendName, device: Device, limits: MathLimits): KernelBackend {
  switch (name) {
    case 'flash':
      return flashBackend(device);
    case 'math':
      return mathBackend(limits);
    case 'efficient':
      return efficientBackend(device);
  }
}
