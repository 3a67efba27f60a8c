import type { AttentionLayout, AttentionProblem } from '@webattn/tensor';
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
import { backwardBindings, dispatchChunks, requireChunks } from './flash-chunks';
import { chooseTiles, type FlashCaps } from './flash-tiles';
import { packFlashUniforms, type ChunkUniforms, type GradientLayouts } from './flash-uniforms';
import { rawRecorder, type KernelRecorder } from './recorder';
import deltaSource from './flash-backward-delta.wgsl?raw';
import keyValueSource from './flash-backward-key-value.wgsl?raw';
import querySource from './flash-backward-query.wgsl?raw';

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
  const kernels = backwardBindings(problem, gradients, residual);
  const limit = caps.maxStorageBufferBindingSize;
  const chunks = {
    delta: requireChunks(problem, kernels.delta, limit, 'flash backward'),
    query: requireChunks(problem, kernels.query, limit, 'flash backward'),
    keyValue: requireChunks(problem, kernels.keyValue, limit, 'flash backward'),
  };
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
  if (keyLength > 0) {
    dispatchChunks(
      recorder,
      flashKernel('flash-backward-key-value', keyValueSource, variant, tiles, {
        BLOCK_M: tiles.backwardRows,
        THREADS: tiles.backwardKeys,
      }),
      problem,
      kernels.keyValue,
      chunks.keyValue,
      tensors,
      whole,
      uniforms,
      (chunk) => [Math.ceil(chunk.rows.count / (tiles.backwardKeys * tiles.forwardRowsPerThread)), chunk.heads.count, chunk.batch.count],
    );
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
