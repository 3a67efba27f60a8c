import {
  describeAttention,
  emptyTensor,
  rejection,
  type AttentionOptions,
  type AttentionProblem,
  type Rejection,
  type Tensor,
} from '@webattn/tensor';
import { checkBindings, checkCommon } from './check-flash';
import { layoutOfTensor, optionalInputs, requireGpu } from './flash-attention';
import { assertProblemBuffers, assertRunnable, recordingCaps, wholeOptionalBindings, type FlashForwardBuffers, type FlashRecordOptions, type FlashRecording } from './flash-forward';
import type { FlashCaps } from './flash-tiles';
import type { KernelBindings } from './flash-chunks';
import { deviceRecorder, rawRecorder, type KernelRecorder } from './recorder';
import { recordSplitKvChunks, splitKvKernelsOf, splitPlan } from './split-kv-record';

export { splitPlan };

const BACKEND = 'efficient';
/** Decode shapes: few query rows over many keys. */
export const SPLIT_KV_MAX_QUERY_LENGTH = 16;
export const SPLIT_KV_MIN_KEY_LENGTH = 1024;
/**
 * Every reason the split-KV ('efficient') backend cannot run `problem` (empty when it can): decode shapes only
 * (L ≤ 16, S ≥ 1024), forward only (no gradients), no dropout, no packed varlen, no attention weights, plus the
 * limits flash shares (dtype, head dims, layouts).
 */
export function checkSplitKv(problem: AttentionProblem, caps: FlashCaps): Rejection[] {
  const out = checkCommon({ ...problem, requiresGrad: false }, caps, BACKEND);
  const reject = (check: string, got: string | number, need: string, why = '') => out.push(rejection(BACKEND, check, got, need, why));
  if (problem.queryLength > SPLIT_KV_MAX_QUERY_LENGTH) {
    reject('query length', problem.queryLength, `≤ ${SPLIT_KV_MAX_QUERY_LENGTH}`, 'split-KV is for decoding; flash handles long queries');
  }
  if (problem.keyLength < SPLIT_KV_MIN_KEY_LENGTH) {
    reject('key length', problem.keyLength, `≥ ${SPLIT_KV_MIN_KEY_LENGTH}`, 'short key sequences do not need splitting; flash is as fast');
  }
  if (problem.dropout && problem.dropout.p > 0) reject('dropout', problem.dropout.p, '0', 'split-KV has no dropout; use flash');
  if (problem.requiresGrad) reject('requiresGrad', 'true', 'false', 'split-KV is forward only; flash has a backward');
  if (problem.varlen) reject('varlen', 'cuSeqlens', 'a padded batch (keyLengths)', 'split-KV does not read packed sequences');
  if (problem.needWeights) reject('needWeights', 'true', 'false', 'split-KV never materialises the weights');
  if (out.length === 0) out.push(...checkBindings(problem, caps, BACKEND, [splitKvKernels(problem, caps)]));
  return out;
}

/**
 * Both split-KV passes bind per chunk: plan them together (the partial's q, k, v and mask per chunk of heads ×
 * rows × keys, the combine's out, scratch and logsumexp per row chunk).
 */
export function splitKvKernels(problem: AttentionProblem, caps: Pick<FlashCaps, 'maxComputeWorkgroupsPerDimension'> = { maxComputeWorkgroupsPerDimension: 65535 }): KernelBindings {
  return splitKvKernelsOf(problem, caps, false).plan;
}

export function recordSplitKv(recorder: KernelRecorder, caps: FlashCaps, problem: AttentionProblem, buffers: FlashForwardBuffers): void {
  recordSplitKvChunks(recorder, caps, problem, buffers, wholeOptionalBindings(problem, buffers), 'split-KV forward');
}

/**
 * Split-KV forward on plain GPUBuffers (same buffers and recording rules as `flashAttentionForward`; out and
 * logsumexp as flash writes them). Throws InvalidArgumentError listing every `checkSplitKv` rejection.
 */
export function splitKvAttentionForward(
  device: GPUDevice,
  problem: AttentionProblem,
  buffers: FlashForwardBuffers,
  options: FlashRecordOptions = {},
): FlashRecording {
  const caps = recordingCaps(device, options);
  assertRunnable(checkSplitKv(problem, caps), 'splitKvAttentionForward');
  assertProblemBuffers(problem, buffers);
  const encoder = options.encoder ?? device.createCommandEncoder({ label: 'split-kv attention' });
  const recorder = rawRecorder(device, encoder);
  recordSplitKv(recorder, caps, problem, buffers);
  if (options.encoder) return { release: () => recorder.finish() };
  device.queue.submit([encoder.finish()]);
  recorder.finish();
  return { release: () => undefined };
}

/**
 * Split-KV (flash-decoding) attention on tensors, for few queries over long keys: the keys are split across
 * workgroups and the partial (max, sum, out) merged. Same options and outputs as `flashAttention` (dropout,
 * varlen and gradients are rejected by `checkSplitKv`).
 */
export function splitKvAttention(q: Tensor, k: Tensor, v: Tensor, options: AttentionOptions = {}): { out: Tensor; logsumexp: Tensor } {
  const problem = describeAttention(q, k, v, options);
  const device = q.device;
  requireGpu(device, 'splitKvAttention');
  assertRunnable(checkSplitKv(problem, device.caps), 'splitKvAttention');
  const out = emptyTensor(device, problem.dtype, [problem.batch, problem.queryHeads, problem.queryLength, problem.headDimV], 'split-kv out');
  const logsumexp = emptyTensor(device, 'f32', [problem.batch, problem.queryHeads, problem.queryLength], 'split-kv logsumexp');
  const recorder = deviceRecorder(device);
  recordSplitKv(recorder, device.caps, { ...problem, layout: { ...problem.layout, out: layoutOfTensor(out, false) } }, {
    q: q.buffer,
    k: k.buffer,
    v: v.buffer,
    out: out.buffer,
    logsumexp: logsumexp.buffer,
    ...optionalInputs(recorder, problem, options),
  });
  recorder.finish();
  return { out, logsumexp };
}
