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
import { BINDING, flashKernel, variantOf } from './flash-kernels';
import { chooseTiles, type FlashCaps } from './flash-tiles';
import { dispatchChunks, requireChunks, splitKvBindings, type KernelBindings } from './flash-chunks';
import { packFlashUniforms, type ChunkUniforms } from './flash-uniforms';
import { deviceRecorder, rawRecorder, type KernelRecorder } from './recorder';
import partialText from './split-kv-partial.wgsl?raw';
import combineText from './split-kv-combine.wgsl?raw';

const BACKEND = 'efficient';
/** Decode shapes: few query rows over many keys. */
export const SPLIT_KV_MAX_QUERY_LENGTH = 16;
export const SPLIT_KV_MIN_KEY_LENGTH = 1024;
/** Keys per chunk at most (the kernel's MAX_CHUNK: scores held in workgroup memory). */
const MAX_CHUNK = 512;
const THREADS = 64;
/** Enough workgroups to fill a large GPU. */
const TARGET_WORKGROUPS = 256;

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
  if (out.length === 0) out.push(...checkBindings(problem, caps, BACKEND, [splitKvKernels(problem)]));
  return out;
}

/** How many chunks the keys are split into, and their length (a multiple of 4, ≤ MAX_CHUNK). */
export function splitPlan(problem: AttentionProblem): { count: number; length: number } {
  const rows = Math.max(1, problem.batch * problem.queryHeads * problem.queryLength);
  const fewest = Math.ceil(problem.keyLength / MAX_CHUNK);
  const most = Math.max(1, Math.ceil(problem.keyLength / THREADS));
  const wanted = Math.min(most, Math.max(fewest, Math.ceil(TARGET_WORKGROUPS / rows)));
  const length = Math.min(MAX_CHUNK, Math.ceil(Math.ceil(problem.keyLength / wanted) / 4) * 4);
  return { count: Math.ceil(problem.keyLength / length), length };
}

/** Both split-KV passes bind per chunk: plan them together (the partial's q, k, v and mask, the combine's out, scratch). */
export function splitKvKernels(problem: AttentionProblem): KernelBindings {
  const { partial, combine } = splitKvBindings(problem, splitPlan(problem).count);
  return { ...partial, tensors: [...partial.tensors, ...combine.tensors], whole: combine.whole };
}

export function recordSplitKv(recorder: KernelRecorder, caps: FlashCaps, problem: AttentionProblem, buffers: FlashForwardBuffers): void {
  const { batch, queryHeads, queryLength, headDimV } = problem;
  if (batch === 0 || queryHeads === 0 || queryLength === 0) return;
  const tiles = chooseTiles(problem, caps)!;
  const variant = variantOf(problem);
  const split = splitPlan(problem);
  // Chunks of batch entries × heads when a binding would exceed the limit; each chunk has its own scratch.
  const kernels = splitKvBindings(problem, split.count);
  const chunks = requireChunks(problem, splitKvKernels(problem), caps.maxStorageBufferBindingSize, 'split-KV forward');
  const optional = wholeOptionalBindings(problem, buffers);
  const partialSource = flashKernel('split-kv-partial', partialText, variant, tiles, { THREADS });
  const combineSource = flashKernel('split-kv-combine', combineText, variant, tiles, { THREADS });
  for (const chunk of chunks) {
    const partials = chunk.batch.count * chunk.heads.count * queryLength * split.count;
    const stats = recorder.temporary(partials * 2 * 4, GPUBufferUsage.STORAGE, 'split-kv partial stats');
    const partialOut = recorder.temporary(partials * headDimV * 4, GPUBufferUsage.STORAGE, 'split-kv partial out');
    const uniforms = (values: ChunkUniforms) => packFlashUniforms(problem, undefined, split, false, values);
    dispatchChunks(
      recorder,
      partialSource,
      problem,
      kernels.partial,
      [chunk],
      { ...buffers },
      [...optional, [BINDING.first + 3, stats], [BINDING.first + 4, partialOut]],
      uniforms,
      () => [split.count, queryLength * chunk.heads.count, chunk.batch.count],
    );
    dispatchChunks(
      recorder,
      combineSource,
      problem,
      kernels.combine,
      [chunk],
      { ...buffers },
      [...optional, [BINDING.first, stats], [BINDING.first + 1, partialOut], [BINDING.first + 3, buffers.logsumexp]],
      uniforms,
      () => [queryLength, chunk.heads.count, chunk.batch.count],
    );
  }
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
