/**
 * scaledDotProductAttention participates in autograd as one node: the output's gradFn holds q, k, v, the output,
 * the logsumexp the forward kept and the resolved options (dropout seed included), and its backward runs on the
 * backend that ran the forward — or, when that backend has no backward (split-KV), on math (GPU) or cpu (CPU),
 * which the dispatch log reports.
 */
import { isGradEnabled, recordGradFn, type AttentionOptions, type Tensor } from '@webattn/tensor';
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
  const { request, outputs, options } = saved;
  const mask = options.attnMask;
  // recordGradFn keeps detached views of what backward reads (the caller may dispose its own handles) and frees
  // them after the one backward pass, as every other op does.
  recordGradFn(
    outputs.out,
    `scaledDotProductAttention(${saved.backend.name})`,
    [saved.q, saved.k, saved.v],
    [saved.q, saved.k, saved.v, outputs.out, outputs.logsumexp, ...(mask ? [mask] : [])],
    (gradOutput, kept) => {
      const [q, k, v, out, logsumexp, keptMask] = kept as [Tensor, Tensor, Tensor, Tensor, Tensor, Tensor | undefined];
      const { backend, reason } = backwardBackend(saved.backend, request);
      emitSdpaDispatch({
        phase: 'backward',
        backend: backend.name,
        reason: `${backend.name}: ${reason}`,
        summary: summarizeProblem(request.problem, request.target.kind),
        problem: request.problem,
        rejections: [],
      });
      const backwardOptions = keptMask ? { ...options, attnMask: keptMask } : options;
      // The logsumexp means the same for every backend (natural log, f32 [B, Hq, L]), so a fallback may use it.
      const { dq, dk, dv } = backend.backward!(q, k, v, out, logsumexp, gradOutput, backwardOptions);
      return [dq, dk, dv];
    },
  );
  // The node holds its own view of the logsumexp; this handle is no longer needed.
  outputs.logsumexp.dispose();
}
