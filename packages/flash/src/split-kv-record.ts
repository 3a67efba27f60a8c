/**
 * Recording split-KV: the decode backend's kernels (split-kv-partial.wgsl, split-kv-combine.wgsl), which also run
 * the flash forward of problems whose keys of one kv head exceed a storage binding. The partial pass runs per
 * chunk of heads × rows × keys (whole splits), writing each split's (m, l, acc) of the chunk's rows into scratch;
 * once every key chunk of a row chunk has run, the combine merges its splits into out and the logsumexp. Splits
 * are global (key ranges of `splitPlan`), so a run over key chunks gives the bits of one without.
 */
import type { AttentionProblem } from '@webattn/tensor';
import { largest, rowGroups, type Chunk } from './binding-chunks';
import { BINDING, flashKernel, variantOf } from './flash-kernels';
import { assertWholeBuffersFit, dispatchChunks, requireChunks, splitKvBindings, type SplitPlan } from './flash-chunks';
import type { FlashForwardBuffers } from './flash-forward';
import { chooseTiles, type FlashCaps } from './flash-tiles';
import { packFlashUniforms, type ChunkUniforms } from './flash-uniforms';
import type { KernelRecorder } from './recorder';
import { logsumexpBinding } from './row-stats';
import partialText from './split-kv-partial.wgsl?raw';
import combineText from './split-kv-combine.wgsl?raw';

/** Keys per split at most (the partial kernel's MAX_CHUNK: scores held in workgroup memory). */
const MAX_SPLIT = 512;
const THREADS = 64;
/** Enough workgroups to fill a large GPU. */
const TARGET_WORKGROUPS = 256;

/** How many splits the keys are split into, and their length (a multiple of 4, ≤ 512). */
export function splitPlan(problem: AttentionProblem): SplitPlan {
  const rows = Math.max(1, problem.batch * problem.queryHeads * problem.queryLength);
  const fewest = Math.ceil(problem.keyLength / MAX_SPLIT);
  const most = Math.max(1, Math.ceil(problem.keyLength / THREADS));
  const wanted = Math.min(most, Math.max(fewest, Math.ceil(TARGET_WORKGROUPS / rows)));
  const length = Math.max(4, Math.min(MAX_SPLIT, Math.ceil(Math.ceil(problem.keyLength / wanted) / 4) * 4));
  // No keys: one empty split (out 0, logsumexp −∞).
  return { count: Math.max(1, Math.ceil(problem.keyLength / length)), length };
}

/** The split-KV kernels' bindings for a problem on a device (planning covers both passes: `plan`). */
export function splitKvKernelsOf(problem: AttentionProblem, caps: Pick<FlashCaps, 'maxComputeWorkgroupsPerDimension'>, residual: boolean, packing?: FlashForwardBuffers['packedRows'] | 'longest') {
  return splitKvBindings(problem, splitPlan(problem), residual, packing, caps.maxComputeWorkgroupsPerDimension || 65535);
}

/**
 * Records split-KV for `problem` (no checks; `what` names the caller in errors). `optional`: the whole optional
 * bindings (key lengths, varlen offsets). Throws InvalidArgumentError when even the smallest chunk does not fit.
 */
export function recordSplitKvChunks(
  recorder: KernelRecorder,
  caps: FlashCaps,
  problem: AttentionProblem,
  buffers: FlashForwardBuffers,
  optional: readonly (readonly [number, GPUBuffer])[],
  what: string,
): void {
  const { batch, queryHeads, queryLength, keyLength, headDimV } = problem;
  if (batch === 0 || queryHeads === 0 || queryLength === 0) return;
  const residual = buffers.logsumexpResidual ?? false;
  const limit = caps.maxStorageBufferBindingSize;
  const split = splitPlan(problem);
  const kernels = splitKvKernelsOf(problem, caps, residual, buffers.packedRows);
  const chunks = requireChunks(problem, kernels.plan, limit, what);
  assertWholeBuffersFit([kernels.plan], { ...buffers }, limit, what);
  const tiles = chooseTiles(problem, caps)!;
  const variant = variantOf(problem);
  const partialSource = flashKernel('split-kv-partial', partialText, variant, tiles, { THREADS });
  const combineSource = flashKernel('split-kv-combine', combineText, variant, tiles, { THREADS });
  const groups = rowGroups(chunks);
  // Every key of a row chunk: what the combine covers.
  const rowChunks = groups.map((group) => ({ ...group[0]!, keys: { start: 0, count: keyLength } }));
  const partialsOf = (chunk: Chunk) => chunk.batch.count * chunk.heads.count * chunk.rows.count * split.count;
  const most = largest(rowChunks.map(partialsOf));
  const stats = recorder.scratch(most * 2 * 4, GPUBufferUsage.STORAGE, 'split-kv partial stats');
  const partialOut = recorder.scratch(most * headDimV * 4, GPUBufferUsage.STORAGE, 'split-kv partial out');
  const logsumexp = logsumexpBinding(recorder, problem, 'query', {
    buffer: buffers.logsumexp,
    residual,
    limit,
    binding: BINDING.first + 3,
    access: 'write',
    chunks: rowChunks,
  });
  const uniforms = (values: ChunkUniforms) => packFlashUniforms(problem, undefined, split, residual, values);
  const tensors = { ...buffers };
  groups.forEach((group, index) => {
    const rows = rowChunks[index]!;
    const partials = partialsOf(rows);
    const scratch = (buffer: GPUBuffer, floats: number) => ({ buffer, offset: 0, size: Math.max(4, partials * floats * 4) });
    dispatchChunks(
      recorder,
      partialSource,
      problem,
      kernels.partial,
      group,
      tensors,
      [...optional, [BINDING.first + 3, scratch(stats, 2)], [BINDING.first + 4, scratch(partialOut, headDimV)]],
      uniforms,
      (chunk) => [Math.ceil(chunk.keys.count / split.length), chunk.rows.count * chunk.heads.count, chunk.batch.count],
    );
    dispatchChunks(
      recorder,
      combineSource,
      problem,
      kernels.combine,
      [rows],
      tensors,
      [...optional, [BINDING.first, scratch(stats, 2)], [BINDING.first + 1, scratch(partialOut, headDimV)]],
      uniforms,
      (chunk) => [chunk.rows.count, chunk.heads.count, chunk.batch.count],
      [logsumexp],
    );
  });
}
