import { InvalidArgumentError, type AttentionLayout, type AttentionProblem, type KernelSource } from '@webattn/tensor';
import { shiftedOffset, type Chunk } from './binding-chunks';
import { checkFlash, layoutSpan } from './check-flash';
import {
  assertBufferHolds,
  assertProblemBuffers,
  assertRunnable,
  recordingCaps,
  wholeOptionalBindings,
  type FlashForwardBuffers,
  type FlashRecordOptions,
  type FlashRecording,
} from './flash-forward';
import { BINDING, flashKernel, variantOf } from './flash-kernels';
import {
  assertWholeBuffersFit,
  backwardBindings,
  chunkArguments,
  dispatchChunks,
  keyValuePartialBindings,
  overflowMessage,
  planKeyValue,
  requireChunks,
  type PackedRows,
} from './flash-chunks';
import { chooseTiles, type FlashCaps } from './flash-tiles';
import { packFlashUniforms, type ChunkUniforms, type GradientLayouts } from './flash-uniforms';
import { rawRecorder, type KernelRecorder } from './recorder';
import deltaSource from './flash-backward-delta.wgsl?raw';
import keyValueSource from './flash-backward-key-value.wgsl?raw';
import querySource from './flash-backward-query.wgsl?raw';
import finishSource from './flash-backward-finish.wgsl?raw';

/**
 * The dK/dV kernel's source: writing dk and dv in the problem's dtype, or (partial) running f32 sums in scratch
 * that later dispatches continue and flash-backward-finish.wgsl writes out.
 */
export function keyValueSourceFor(partial: boolean): string {
  return keyValueSource
    .replaceAll('${GRADIENT_T}', partial ? 'f32' : '${T}')
    .replaceAll('${GRADIENT_NAN}', partial ? 'nan_f32()' : 'nan_stored()');
}

/**
 * Buffers of a flash backward pass: the forward's inputs, out and logsumexp, plus gradOut (read) and dq, dk, dv
 * (written, dtype `problem.dtype`). gradOut, dq, dk and dv use the layouts in `layouts` (default: those of out,
 * q, k and v in `problem.layout`). dk/dv rows of padded keys (≥ keyLengths[b]) are written as 0.
 */
export interface FlashBackwardBuffers extends FlashForwardBuffers {
  readonly gradOut: GPUBuffer;
  readonly dq: GPUBuffer;
  readonly dk: GPUBuffer;
  readonly dv: GPUBuffer;
  readonly layouts?: Partial<GradientLayouts>;
}

export function gradientLayouts(problem: AttentionProblem, layouts: Partial<GradientLayouts> = {}): GradientLayouts {
  return {
    gradOut: layouts.gradOut ?? problem.layout.out,
    dq: layouts.dq ?? problem.layout.q,
    dk: layouts.dk ?? problem.layout.k,
    dv: layouts.dv ?? problem.layout.v,
  };
}

/**
 * Records the three backward kernels (no checks): delta = rowsum(dO ∘ O) into a temporary [B, Hq, L] f32 buffer
 * (the only extra memory), then dK/dV over key tiles and dQ over query tiles, both recomputing P from q, k and
 * the logsumexp (no N×N buffer, no atomics: the same bits on every run).
 */
export function recordFlashBackward(
  recorder: KernelRecorder,
  caps: FlashCaps,
  problem: AttentionProblem,
  buffers: FlashBackwardBuffers,
): void {
  const { batch, queryHeads, queryLength, keyLength } = problem;
  if (batch === 0 || queryHeads === 0 || (queryLength === 0 && keyLength === 0)) return;
  const tiles = chooseTiles(problem, caps)!;
  const variant = variantOf(problem);
  const gradients = gradientLayouts(problem, buffers.layouts);
  const residual = buffers.logsumexpResidual ?? false;
  // Split into chunks (batch entries × query heads × rows; kv heads for dK/dV) when a binding would exceed the limit.
  const packing = buffers.packedRows;
  const kernels = backwardBindings(problem, gradients, residual, packing);
  const limit = caps.maxStorageBufferBindingSize;
  const chunks = {
    delta: requireChunks(problem, kernels.delta, limit, 'flash backward'),
    query: requireChunks(problem, kernels.query, limit, 'flash backward'),
  };
  assertWholeBuffersFit([kernels.delta, kernels.query, kernels.keyValue], { ...buffers }, limit, 'flash backward');
  const keyValuePlan = planKeyValue(problem, gradients, residual, limit, packing);
  if ('overflow' in keyValuePlan) {
    throw new InvalidArgumentError(`flash backward cannot run this problem:\n  - ${overflowMessage(keyValuePlan.overflow, limit)}`);
  }
  const uniforms = (chunk: ChunkUniforms) => packFlashUniforms(problem, gradients, undefined, residual, chunk);
  const optional = wholeOptionalBindings(problem, buffers);
  const tensors = { ...buffers };
  const delta = recorder.temporary(
    Math.max(4, batch * queryHeads * queryLength * 4),
    GPUBufferUsage.STORAGE,
    'flash backward delta',
  );
  const rowsPerWorkgroup = tiles.forwardThreads * tiles.forwardRowsPerThread;
  if (queryLength > 0) {
    dispatchChunks(
      recorder,
      flashKernel('flash-backward-delta', deltaSource, variant, tiles, { BLOCK_M: tiles.rows }),
      problem,
      kernels.delta,
      chunks.delta,
      tensors,
      [...optional, [BINDING.first + 2, delta]],
      uniforms,
      (chunk) => [Math.ceil(chunk.rows.count / tiles.rows), chunk.heads.count, chunk.batch.count],
    );
  }
  const whole: [number, GPUBuffer][] = [...optional, [BINDING.first + 4, buffers.logsumexp], [BINDING.first + 5, delta]];
  const keysPerWorkgroup = tiles.backwardKeys * tiles.forwardRowsPerThread;
  const keyValueConstants = { BLOCK_M: tiles.backwardRows, THREADS: tiles.backwardKeys };
  if (keyLength > 0 && 'direct' in keyValuePlan) {
    dispatchChunks(
      recorder,
      flashKernel('flash-backward-key-value', keyValueSourceFor(false), variant, tiles, keyValueConstants),
      problem,
      kernels.keyValue,
      keyValuePlan.direct,
      tensors,
      whole,
      uniforms,
      (chunk) => [Math.ceil(chunk.rows.count / keysPerWorkgroup), chunk.heads.count, chunk.batch.count],
    );
  }
  if (keyLength > 0 && 'partial' in keyValuePlan) {
    const source = flashKernel('flash-backward-key-value-partial', keyValueSourceFor(true), variant, tiles, keyValueConstants);
    const finish = flashKernel('flash-backward-finish', finishSource, variant, tiles, { THREADS: tiles.backwardKeys });
    recordPartialKeyValue(recorder, problem, gradients, residual, packing, keyValuePlan.partial, {
      source,
      finish,
      tensors,
      whole,
      optional,
      uniforms,
      workgroups: Math.ceil(keyLength / keysPerWorkgroup),
      finishWorkgroups: Math.ceil(keyLength / tiles.backwardKeys),
    });
  }
  if (queryLength > 0) {
    dispatchChunks(
      recorder,
      flashKernel('flash-backward-query', querySource, variant, tiles, { THREADS: tiles.forwardThreads, BLOCK_N: tiles.forwardKeys }),
      problem,
      kernels.query,
      chunks.query,
      tensors,
      whole,
      uniforms,
      (chunk) => [Math.ceil(chunk.rows.count / rowsPerWorkgroup), chunk.heads.count, chunk.batch.count],
    );
  }
}

/**
 * dK/dV one kv head at a time when its query rows do not fit a binding: the partial kernel runs over chunks of
 * the kv head's query heads × rows (in the unsplit order), continuing f32 sums in scratch [S, D]; then the finish
 * kernel writes dk and dv in their layouts and dtype.
 */
function recordPartialKeyValue(
  recorder: KernelRecorder,
  problem: AttentionProblem,
  gradients: GradientLayouts,
  residual: boolean,
  packing: PackedRows | undefined,
  plan: readonly (readonly Chunk[])[],
  run: {
    source: KernelSource;
    finish: KernelSource;
    tensors: Parameters<typeof chunkArguments>[3];
    whole: readonly (readonly [number, GPUBuffer])[];
    optional: readonly (readonly [number, GPUBuffer])[];
    uniforms: (chunk: ChunkUniforms) => ArrayBuffer;
    workgroups: number;
    finishWorkgroups: number;
  },
): void {
  const { keyLength, headDimQk, headDimV } = problem;
  const bindings = keyValuePartialBindings(problem, gradients, residual, packing);
  const group = problem.queryHeads / problem.kvHeads;
  const scratchK = recorder.temporary(keyLength * headDimQk * 4, GPUBufferUsage.STORAGE, 'flash backward dk scratch');
  const scratchV = recorder.temporary(keyLength * headDimV * 4, GPUBufferUsage.STORAGE, 'flash backward dv scratch');
  // dk and dv point at the scratch: contiguous f32 [S, D] (packed varlen: shifted back by the sequence's first key,
  // as the kernel adds it; u32 arithmetic wraps).
  const scratchOf = (b: number) => {
    const keyStart = problem.varlen && packing ? packing.cuSeqlensK[b]! : 0;
    return {
      dk_batch: 0, dk_head: 0, dk_seq: headDimQk, dk_dim: 1, dk_offset: shiftedOffset(0, keyStart * headDimQk),
      dv_batch: 0, dv_head: 0, dv_seq: headDimV, dv_dim: 1, dv_offset: shiftedOffset(0, keyStart * headDimV),
    };
  };
  for (const chunks of plan) {
    const first = chunks[0]!;
    const kvHead = Math.floor(first.heads.start / group);
    const scratch = scratchOf(first.batch.start);
    chunks.forEach((chunk, index) => {
      const args = chunkArguments(problem, bindings.partial, chunk, run.tensors);
      recorder.dispatch(
        run.source,
        [...run.whole, ...args.bindings, [BINDING.first + 6, scratchK], [BINDING.first + 7, scratchV]],
        run.uniforms({
          ...args.uniforms,
          ...scratch,
          head_base: kvHead,
          row_base: 0,
          group_first: chunk.heads.start - kvHead * group,
          group_count: chunk.heads.count,
          query_row_first: chunk.rows.start,
          query_row_end: chunk.rows.start + chunk.rows.count,
          kv_partial: index === 0 ? 0 : 1,
        }),
        [run.workgroups, 1, 1],
      );
    });
    const keys: Chunk = { batch: first.batch, heads: { start: kvHead, count: 1 }, rows: { start: 0, count: keyLength } };
    const args = chunkArguments(problem, bindings.finish, keys, run.tensors);
    recorder.dispatch(
      run.finish,
      [...run.optional, [BINDING.first, scratchK], [BINDING.first + 1, scratchV], ...args.bindings],
      run.uniforms(args.uniforms),
      [run.finishWorkgroups, 1, 1],
    );
  }
}

function assertGradientBuffers(problem: AttentionProblem, buffers: FlashBackwardBuffers): void {
  if (problem.varlen || problem.batch === 0) return;
  const layouts = gradientLayouts(problem, buffers.layouts);
  const bytes = problem.dtype === 'f16' ? 2 : 4;
  const { batch, queryHeads, kvHeads, queryLength, keyLength, headDimQk, headDimV } = problem;
  const check = (name: string, buffer: GPUBuffer, layout: AttentionLayout, heads: number, length: number, dim: number) => {
    if (length > 0) assertBufferHolds(name, buffer, layoutSpan(layout, batch, heads, length, dim), bytes);
  };
  check('gradOut', buffers.gradOut, layouts.gradOut, queryHeads, queryLength, headDimV);
  check('dq', buffers.dq, layouts.dq, queryHeads, queryLength, headDimQk);
  check('dk', buffers.dk, layouts.dk, kvHeads, keyLength, headDimQk);
  check('dv', buffers.dv, layouts.dv, kvHeads, keyLength, headDimV);
}

/**
 * FlashAttention-2 backward on plain GPUBuffers: dq, dk, dv of sum(out ∘ gradOut), from the forward's out and
 * logsumexp. GQA gradients are summed over the query heads sharing a kv head; dropout bits are regenerated from
 * the same seed/offset; rows without any allowed key get zero gradients. Recording and release as
 * `flashAttentionForward`.
 */
export function flashAttentionBackward(
  device: GPUDevice,
  problem: AttentionProblem,
  buffers: FlashBackwardBuffers,
  options: FlashRecordOptions = {},
): FlashRecording {
  const caps = recordingCaps(device, options);
  assertRunnable(checkFlash({ ...problem, requiresGrad: true }, caps), 'flashAttentionBackward');
  assertProblemBuffers(problem, buffers);
  assertGradientBuffers(problem, buffers);
  const encoder = options.encoder ?? device.createCommandEncoder({ label: 'flash backward' });
  const recorder = rawRecorder(device, encoder);
  recordFlashBackward(recorder, caps, problem, buffers);
  if (options.encoder) return { release: () => recorder.finish() };
  device.queue.submit([encoder.finish()]);
  recorder.finish();
  return { release: () => undefined };
}
