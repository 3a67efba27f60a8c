/**
 * scaledDotProductAttention participates in autograd as one node: the output's gradFn holds q, k, v, the output,
 * the logsumexp the forward kept and the resolved options (dropout seed included), and its backward runs on the
 * backend that ran the forward — or, when that backend has no backward (split-KV), on math (GPU) or cpu (CPU),
 * which the dispatch log reports.
 */
import { AutogradError, isGradEnabled, type AttentionOptions, type Tensor } from '@webattn/tensor';
import type { AttentionOutputs, BackendOptions, SdpaBackend, SdpaRequest } from './backend';
import { emitSdpaDispatch, summarizeProblem } from './dispatch-log';
import { NoEligibleBackendError } from './errors';
import { explainRequest } from './explain';
import { SDPA_BACKENDS } from './registry';

/** Gradients are wanted when any input requires them and recording is on (not inside noGrad). */
export function wantsGrad(inputs: readonly Tensor[]): boolean {
  return isGradEnabled() && inputs.some((input) => input.requiresGrad);
}

function backwardBackend(forward: SdpaBackend, request: SdpaRequest): { backend: SdpaBackend; reason: string } {
  if (forward.backward) return { backend: forward, reason: `${forward.name} ran the forward` };
  const name = request.target.kind === 'gpu' ? 'math' : 'cpu';
  const explanation = explainRequest({ ...request, restriction: null }, SDPA_BACKENDS.filter((item) => item.name === name));
  const report = explanation.backends[0]!;
  if (!report.eligible) {
    throw new NoEligibleBackendError([name], report.rejections, `the backward of ${explanation.summary}`);
  }
  const backend = SDPA_BACKENDS.find((item) => item.name === name)!;
  return { backend, reason: `${forward.name} has no backward; ${name} computes the gradients` };
}

export function recordAttentionGrad(saved: {
  readonly q: Tensor;
  readonly k: Tensor;
  readonly v: Tensor;
  readonly outputs: AttentionOutputs;
  readonly backend: SdpaBackend;
  readonly request: SdpaRequest;
  readonly options: BackendOptions & AttentionOptions;
}): void {
  const { request, outputs } = saved;
  const inputs = [saved.q, saved.k, saved.v] as const;
  // Detached views keep the storage alive until the backward ran (the caller may dispose its own handles).
  const [q, k, v, out] = [...inputs, outputs.out].map((t) => t.detach()) as [Tensor, Tensor, Tensor, Tensor];
  const mask = saved.options.attnMask?.detach();
  const options = mask ? { ...saved.options, attnMask: mask } : saved.options;
  let logsumexp = outputs.logsumexp;
  let used = false;
  outputs.out.requiresGrad = true;
  outputs.out.gradFn = {
    name: `scaledDotProductAttention(${saved.backend.name})`,
    inputs,
    backward(gradOutput: Tensor): readonly (Tensor | null)[] {
      if (used) {
        throw new AutogradError(
          'backward through scaledDotProductAttention a second time: its saved tensors were freed after the first backward(); run the forward pass again',
        );
      }
      const { backend, reason } = backwardBackend(saved.backend, request);
      emitSdpaDispatch({
        phase: 'backward',
        backend: backend.name,
        reason: `${backend.name}: ${reason}`,
        summary: summarizeProblem(request.problem, request.target.kind),
        problem: request.problem,
        rejections: [],
      });
      // The logsumexp has one meaning for every backend (natural log, f32 [B, Hq, L]), so a fallback may use it.
      const { dq, dk, dv } = backend.backward!(q, k, v, out, logsumexp, gradOutput, options);
      return [dq, dk, dv].map((grad, index) => {
        if (inputs[index]!.requiresGrad) return grad;
        grad.dispose();
        return null;
      });
    },
    release() {
      if (used) return;
      used = true;
      for (const t of [q, k, v, out, mask, logsumexp]) t?.dispose();
      logsumexp = undefined;
    },
  };
}
