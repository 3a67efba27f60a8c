/**
 * scaledDotProductAttention: PyTorch's SDPA on webattn tensors, with the backend choice made visible. Each call
 * describes the problem once (describeAttention validates everything), asks every backend's checks, picks the
 * cheapest eligible one by the cost model, tells the dispatch log, runs it, and — when gradients are wanted —
 * records one autograd node whose backward runs on the same backend (or math/cpu, logged, when it has none).
 *
 * Semantics differing from PyTorch, on purpose: a mask and isCausal may be combined (both apply; PyTorch
 * refuses); rows with no allowed key give 0, not NaN.
 */
import {
  InvalidArgumentError,
  describeAttention,
  type AttentionOptions,
  type AttentionProblem,
  type Tensor,
} from '@webattn/tensor';
import {
  SDPA_BACKEND_NAMES,
  type AttentionOutputs,
  type BackendOptions,
  type SdpaBackend,
  type SdpaBackendName,
  type SdpaRequest,
  type SdpaRestriction,
} from './backend';
import { recordAttentionGrad, wantsGrad } from './autograd';
import { emitSdpaDispatch } from './dispatch-log';
import { NoEligibleBackendError } from './errors';
import { explainRequest, type SdpaExplanation } from './explain';
import { SDPA_BACKENDS } from './registry';
import { currentSdpaBackends, validateBackendList } from './restriction';
import { resolveDropoutSeed } from './dropout-seed';

export interface SdpaOptions extends Omit<AttentionOptions, 'needWeights'> {
  /** Allow only these backends for this call (replaces any withSdpaBackends scope). One name forces it. */
  readonly backends?: readonly SdpaBackendName[];
}

export interface AttentionWithWeights {
  readonly output: Tensor;
  /** Attention weights [B, Hq, L, S] after dropout (not part of autograd). */
  readonly weights: Tensor;
}

interface Prepared {
  readonly request: SdpaRequest;
  readonly options: BackendOptions & AttentionOptions;
  readonly explanation: SdpaExplanation;
}

function restrictionFor(options: SdpaOptions): SdpaRestriction | null {
  if (options.backends !== undefined) {
    return { backends: validateBackendList(options.backends, 'options.backends'), source: 'backends option' };
  }
  const scoped = currentSdpaBackends();
  return scoped ? { backends: scoped, source: 'withSdpaBackends' } : null;
}

/** Everything the backends receive: the caller's options with seed, needWeights and requiresGrad resolved. */
function backendOptionsFor(q: Tensor, k: Tensor, v: Tensor, options: SdpaOptions, needWeights: boolean) {
  const { backends: _backends, ...rest } = options;
  const dropout = resolveDropoutSeed(rest);
  const resolved: AttentionOptions = {
    ...rest,
    needWeights,
    requiresGrad: options.requiresGrad ?? wantsGrad([q, k, v]),
    ...(dropout ? { dropoutSeed: dropout.seed, dropoutOffset: dropout.offset } : {}),
  };
  return resolved;
}

function prepare(q: Tensor, k: Tensor, v: Tensor, options: SdpaOptions, needWeights: boolean): Prepared {
  if ((options as AttentionOptions).needWeights) {
    throw new InvalidArgumentError(
      'scaledDotProductAttention returns only the output; call scaledDotProductAttentionWithWeights for { output, weights }',
    );
  }
  const restriction = restrictionFor(options);
  const resolved = backendOptionsFor(q, k, v, options, needWeights);
  const problem = describeAttention(q, k, v, resolved);
  const target = { kind: q.device.kind, caps: q.device.caps, adapter: q.device.info.adapter };
  const request: SdpaRequest = { problem, target, restriction };
  return { request, options: resolved as BackendOptions & AttentionOptions, explanation: explainRequest(request, SDPA_BACKENDS) };
}

function requireChosen(prepared: Prepared): SdpaBackend {
  const { explanation, request } = prepared;
  const chosen = SDPA_BACKENDS.find((backend) => backend.name === explanation.chosen);
  if (chosen) return chosen;
  const requested = request.restriction?.backends ?? SDPA_BACKEND_NAMES;
  const rejections = explanation.backends
    .filter((report) => requested.includes(report.name))
    .flatMap((report) => report.rejections);
  throw new NoEligibleBackendError(requested, rejections, explanation.summary);
}

function run(q: Tensor, k: Tensor, v: Tensor, options: SdpaOptions, needWeights: boolean): AttentionOutputs {
  const prepared = prepare(q, k, v, options, needWeights);
  const backend = requireChosen(prepared);
  const outputs = backend.forward(q, k, v, prepared.options);
  emitSdpaDispatch({
    phase: 'forward',
    backend: backend.name,
    reason: prepared.explanation.reason,
    summary: prepared.explanation.summary,
    problem: prepared.request.problem,
    rejections: prepared.explanation.backends.flatMap((report) => report.rejections),
  });
  if (prepared.request.problem.requiresGrad) {
    recordAttentionGrad({ q, k, v, outputs, backend, request: prepared.request, options: prepared.options });
  } else {
    outputs.logsumexp.dispose();
  }
  return outputs;
}

/**
 * softmax(q·kᵀ·scale + mask) · v with PyTorch's semantics (bool mask true = may attend), on GPU or CPU tensors.
 * The backend is chosen per call (see explainSdpa) and reported to onSdpaDispatch listeners.
 */
export function scaledDotProductAttention(q: Tensor, k: Tensor, v: Tensor, options: SdpaOptions = {}): Tensor {
  return run(q, k, v, options, false).out;
}

/**
 * The output and the attention weights [B, Hq, L, S] (used by MultiheadAttention's needWeights). Only the math
 * and cpu backends materialise the weights; the dispatch log says so when they run for this reason.
 */
export function scaledDotProductAttentionWithWeights(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  options: SdpaOptions = {},
): AttentionWithWeights {
  const outputs = run(q, k, v, options, true);
  if (!outputs.weights) {
    throw new InvalidArgumentError('the chosen backend returned no weights although needWeights was set');
  }
  return { output: outputs.out, weights: outputs.weights };
}

/**
 * Which backend scaledDotProductAttention would run for these arguments, and every reason each other backend
 * cannot — without running anything. Throws the same typed errors as the call for invalid input.
 */
export function explainSdpa(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  options: SdpaOptions & { readonly needWeights?: boolean } = {},
): SdpaExplanation {
  const { needWeights = false, ...rest } = options;
  return prepare(q, k, v, rest, needWeights).explanation;
}

/**
 * explainSdpa for an already described problem on a hypothetical device (e.g. "would f16 run on a device without
 * shader-f16?"): `target` gives the device kind and capabilities the checks see.
 */
export function explainSdpaProblem(
  problem: AttentionProblem,
  target: SdpaRequest['target'],
  options: { readonly backends?: readonly SdpaBackendName[] } = {},
): SdpaExplanation {
  const restriction = restrictionFor(options);
  return explainRequest({ problem, target, restriction }, SDPA_BACKENDS);
}
