import { InvalidArgumentError, ShapeError, type AttentionProblem, type KernelSource, type Rejection } from '@webattn/tensor';
import { checkFlash, layoutSpan } from './check-flash';
import { BINDING, flashKernel, flashMatrixKernel, variantOf } from './flash-kernels';
import { assertWholeBuffersFit, dispatchChunks, forwardBindings, planKernelChunks, type PackedRows } from './flash-chunks';
import {
  MATRIX_SUBGROUP_SIZE,
  capsOfGpuDevice,
  forwardRowsPerWorkgroup,
  tileLoads,
  tiledForwardShuffles,
  recordingTiles,
  type FlashCaps,
  type FlashTiles,
} from './flash-tiles';
import { packFlashUniforms } from './flash-uniforms';
import { rawRecorder, type KernelRecorder } from './recorder';
import { matrixForwardBlocks } from './matrix-blocks';
import { rowsOfEights, stageQueryRows } from './chunked-rows';
import { vec4RowTensors } from './vec4-loaders';
import { directKeyValuesAllowed, recordPaddedKeyValues } from './padded-key-values';
import { logsumexpBinding } from './row-stats';
import { recordSplitKvChunks } from './split-kv-record';
import forwardSource from './flash-forward.wgsl?raw';
import matrixForwardSource from './flash-forward-matrix.wgsl?raw';
import tiledForwardSource from './flash-forward-tiled.wgsl?raw';

/**
 * Buffers of a flash forward pass. q, k, v and out are read and written through `problem.layout` (element
 * strides and offsets, dtype `problem.dtype`); logsumexp is f32, contiguous [B, Hq, L] (for varlen, L is the
 * longest query sequence and row i of sequence b sits at (b·Hq + h)·L + i). Optional inputs: mask (bool: one
 * byte per element, f32 or f16 additive; indexed through `problem.mask`), keyLengths (u32 per batch entry),
 * cuSeqlensQ/cuSeqlensK (u32, B + 1 offsets). Every buffer needs STORAGE usage.
 */
export interface FlashForwardBuffers {
  readonly q: GPUBuffer;
  readonly k: GPUBuffer;
  readonly v: GPUBuffer;
  readonly out: GPUBuffer;
  readonly logsumexp: GPUBuffer;
  readonly mask?: GPUBuffer;
  readonly keyLengths?: GPUBuffer;
  readonly cuSeqlensQ?: GPUBuffer;
  readonly cuSeqlensK?: GPUBuffer;
  /**
   * Packed varlen: the same offsets as cuSeqlensQ/cuSeqlensK, on the host. With them the dispatches are split over
   * sequences (binding only their rows) when q, k, v, ... exceed one binding; without them those buffers are
   * bound whole and must each fit maxStorageBufferBindingSize (InvalidArgumentError otherwise).
   */
  readonly packedRows?: PackedRows;
  /**
   * The logsumexp buffer holds 2·B·Hq·L floats: forward writes each row's f32 rounding residual after the
   * logsumexp values, and backward subtracts it too, so recomputed probabilities stay exact even for huge logits
   * (scores ~1e4, where one f32 ulp of the logsumexp is ~1e-3). Pass the same value to forward and backward.
   * When 2·B·Hq·L floats exceed one storage binding, each chunk's rows are staged through a small scratch.
   */
  readonly logsumexpResidual?: boolean;
}

export interface FlashRecordOptions {
  /**
   * Record into this encoder instead of submitting. The caller submits it, then calls `release()` on the
   * returned recording (it destroys the small uniform/scratch buffers the kernels use).
   */
  readonly encoder?: GPUCommandEncoder;
  /**
   * Use at most this many bytes of workgroup storage (default: the device's limit). Tiles shrink to fit; e.g.
   * 16384 runs the tiles every WebGPU device supports.
   */
  readonly workgroupStorageLimit?: number;
  /**
   * Bind at most this many bytes per storage buffer (default: the device's maxStorageBufferBindingSize). Larger
   * problems are split into more dispatches; tests lower it to split small problems.
   */
  readonly maxStorageBindingSize?: number;
  /**
   * Backward: the most bytes of scratch the kernels (tiled, or on subgroup matrices) may keep the score gradients
   * dS in, so that dQ is one matrix product instead of recomputing them (default STORED_SCORES_BYTES, 1 GiB, within the device's limits;
   * 0 always recomputes).
   */
  readonly storedScoresBytes?: number;
}

/** The device's caps, with the workgroup storage and binding size limited as `options` asks. */
export function recordingCaps(device: GPUDevice, options: FlashRecordOptions): FlashCaps {
  const caps = capsOfGpuDevice(device);
  const storage = options.workgroupStorageLimit;
  const binding = options.maxStorageBindingSize;
  return {
    ...caps,
    ...(storage === undefined ? {} : { maxComputeWorkgroupStorageSize: Math.min(storage, caps.maxComputeWorkgroupStorageSize) }),
    ...(binding === undefined ? {} : { maxStorageBufferBindingSize: Math.min(binding, caps.maxStorageBufferBindingSize) }),
    ...(options.storedScoresBytes === undefined ? {} : { storedScoresBytes: options.storedScoresBytes }),
  };
}

/** What a raw-buffer call leaves behind: `release()` frees its temporaries (already done when it submitted itself). */
export interface FlashRecording {
  release(): void;
}

/** Throws one error listing every rejection. */
export function assertRunnable(rejections: readonly Rejection[], what: string): void {
  if (rejections.length > 0) {
    throw new InvalidArgumentError(`${what} cannot run this problem:\n${rejections.map((r) => `  - ${r.message}`).join('\n')}`);
  }
}

/** Checks that a buffer holds `elements` elements of `bytes` bytes. */
export function assertBufferHolds(name: string, buffer: GPUBuffer, elements: number, bytes: number): void {
  if (buffer.size < elements * bytes) {
    throw new ShapeError(
      `${name} buffer has ${buffer.size} bytes but the problem's layout reaches element ${elements - 1} (${elements * bytes} bytes); pass a larger buffer or fix the layout`,
    );
  }
}

export function optionalBindings(problem: AttentionProblem, buffers: FlashForwardBuffers): [number, GPUBuffer][] {
  const bindings: [number, GPUBuffer][] = [];
  const need = (name: 'mask' | 'keyLengths' | 'cuSeqlensQ' | 'cuSeqlensK', binding: number) => {
    const buffer = buffers[name];
    if (!buffer) throw new InvalidArgumentError(`the problem needs buffers.${name}, but none was given`);
    bindings.push([binding, buffer]);
  };
  if (problem.mask.kind !== 'none') need('mask', BINDING.mask);
  if (problem.keyLengths) need('keyLengths', BINDING.keyLengths);
  if (problem.varlen) {
    need('cuSeqlensQ', BINDING.cuSeqlensQ);
    need('cuSeqlensK', BINDING.cuSeqlensK);
  }
  return bindings;
}

/** The optional inputs bound whole (key lengths, varlen offsets): the mask is bound per chunk. */
export function wholeOptionalBindings(problem: AttentionProblem, buffers: FlashForwardBuffers): [number, GPUBuffer][] {
  return optionalBindings(problem, buffers).filter(([binding]) => binding !== BINDING.mask);
}

export function assertProblemBuffers(problem: AttentionProblem, buffers: FlashForwardBuffers): void {
  const bytes = problem.dtype === 'f16' ? 2 : 4;
  const { layout, batch, queryHeads, kvHeads, queryLength, keyLength, headDimQk, headDimV } = problem;
  if (!problem.varlen && batch > 0 && queryLength > 0) {
    assertBufferHolds('q', buffers.q, layoutSpan(layout.q, batch, queryHeads, queryLength, headDimQk), bytes);
    assertBufferHolds('out', buffers.out, layoutSpan(layout.out, batch, queryHeads, queryLength, headDimV), bytes);
  }
  if (!problem.varlen && batch > 0 && keyLength > 0) {
    assertBufferHolds('k', buffers.k, layoutSpan(layout.k, batch, kvHeads, keyLength, headDimQk), bytes);
    assertBufferHolds('v', buffers.v, layoutSpan(layout.v, batch, kvHeads, keyLength, headDimV), bytes);
  }
  assertBufferHolds('logsumexp', buffers.logsumexp, batch * queryHeads * queryLength * (buffers.logsumexpResidual ? 2 : 1), 4);
  if (problem.keyLengths && buffers.keyLengths) assertBufferHolds('keyLengths', buffers.keyLengths, batch, 4);
  if (problem.varlen) {
    if (buffers.cuSeqlensQ) assertBufferHolds('cuSeqlensQ', buffers.cuSeqlensQ, batch + 1, 4);
    if (buffers.cuSeqlensK) assertBufferHolds('cuSeqlensK', buffers.cuSeqlensK, batch + 1, 4);
    if (buffers.packedRows) {
      assertPackedRows('cuSeqlensQ', buffers.packedRows.cuSeqlensQ, batch, queryLength);
      assertPackedRows('cuSeqlensK', buffers.packedRows.cuSeqlensK, batch, keyLength);
    }
  }
}

/** Host offsets must be B + 1 non-decreasing integers whose sequences are at most the problem's longest. */
function assertPackedRows(name: string, cu: ArrayLike<number>, batch: number, longest: number): void {
  const values = Array.from(cu);
  const bad = values.length !== batch + 1 || values.some((value, b) => !Number.isInteger(value) || value < 0 || (b > 0 && (value < values[b - 1]! || value - values[b - 1]! > longest)));
  if (bad) {
    throw new ShapeError(
      `buffers.packedRows.${name} is [${values.join(', ')}], need ${batch + 1} non-decreasing offsets whose sequences are at most ${longest} rows long (the problem's longest), equal to the ${name} buffer`,
    );
  }
}

/** The forward kernel `tiles.forward` names, for this problem's variant. */
export function forwardKernel(gpu: GPUDevice, problem: AttentionProblem, tiles: FlashTiles, caps: FlashCaps): KernelSource {
  const forward = tiles.forward;
  const variant = variantOf(problem);
  if (forward.kernel === 'matrix') {
    const direct = tiles.directKeyValues;
    const shape = { rowBlocks: forward.rowsPerThread, qk16: tiles.headDimQk / 16, v16: tiles.headDimV / 16, keys16: forward.keys / 16, direct };
    const qChunks = rowsOfEights(problem.layout.q, problem.headDimQk);
    return flashMatrixKernel(gpu, 'flash-forward-matrix', matrixForwardSource, variant, tiles, {
      sizes: { SUBGROUPS: forward.threads / MATRIX_SUBGROUP_SIZE, ROW_BLOCKS: forward.rowsPerThread, BLOCK_N: forward.keys },
      snippets: { ...matrixForwardBlocks(shape), STAGE_Q: stageQueryRows({ tensor: 'q', uniforms: 'q', dims: 'HEAD_DIM_QK', valid: 'dqk', chunked: qChunks }, 'SUBGROUP_ROWS') },
      flags: { DIRECT_KV: direct, Q_VEC8: qChunks, O_VEC8: rowsOfEights(problem.layout.out, problem.headDimV) },
    });
  }
  if (forward.kernel === 'tiled') {
    // Lanes of a row group take the same branches in the kernel's rare NaN path; the uniformity analysis cannot see it.
    const shuffles = tiledForwardShuffles(caps, forward, tiles.headDimV);
    return flashKernel(
      'flash-forward-tiled',
      tiledForwardSource,
      variant,
      tiles,
      { THREADS: forward.threads },
      { rows: forward.rowsPerThread, keyThreads: forward.keys / 4 },
      {
        sizes: { K_LOADS: tileLoads(forward.keys, tiles.headDimQk, forward.threads), V_LOADS: tileLoads(forward.keys, tiles.headDimV, forward.threads) },
        vec4Rows: vec4RowTensors(problem),
        ...(shuffles ? { flags: { SHUFFLE_P: true }, directives: ['enable subgroups;', 'diagnostic(off, subgroup_uniformity);'] } : {}),
      },
    );
  }
  return flashKernel(
    'flash-forward',
    forwardSource,
    variant,
    tiles,
    { THREADS: forward.threads, BLOCK_N: forward.keys },
    { rows: forward.rowsPerThread },
    { vec4Rows: vec4RowTensors(problem) },
  );
}

/**
 * Records the forward kernel (no checks): shared by the raw-buffer and Tensor-level entry points. Split into
 * chunks of batch entries × heads × query rows when a binding would exceed the caps' maxStorageBufferBindingSize.
 * When even one head's chunk does not fit (the keys and values of one kv head, or a mask's rows × keys), it runs
 * the split-KV kernels over chunks of keys instead (split-kv-record.ts): the same results within the reference
 * tolerance, more slowly.
 */
export function recordFlashForward(
  recorder: KernelRecorder,
  caps: FlashCaps,
  problem: AttentionProblem,
  buffers: FlashForwardBuffers,
): void {
  if (problem.batch === 0 || problem.queryHeads === 0 || problem.queryLength === 0) return;
  const residual = buffers.logsumexpResidual ?? false;
  const limit = caps.maxStorageBufferBindingSize;
  // Split into chunks of batch entries × heads × query rows when a binding would exceed the binding limit.
  const chunked = forwardBindings(problem, residual, buffers.packedRows);
  const plan = planKernelChunks(problem, chunked, limit);
  if ('overflow' in plan) {
    recordSplitKvChunks(recorder, caps, problem, buffers, wholeOptionalBindings(problem, buffers), 'flash forward');
    return;
  }
  const chunks = plan.chunks;
  assertWholeBuffersFit([chunked], { ...buffers }, limit, 'flash forward');
  const tiles = recordingTiles(recorder.gpu, { ...problem, directKeyValues: directKeyValuesAllowed(problem, caps, buffers) }, caps)!;
  const forward = tiles.forward;
  const source = forwardKernel(recorder.gpu, problem, tiles, caps);
  const rowsPerWorkgroup = forwardRowsPerWorkgroup(forward);
  let whole: [number, GPUBuffer][] = wholeOptionalBindings(problem, buffers);
  let kernelProblem = problem;
  let kernelBindings = chunked;
  if (tiles.directKeyValues) {
    // v (and k, unless read in place) through padded copies bound whole (padded-key-values.ts); the other tensors
    // chunk as planned.
    const padded = recordPaddedKeyValues(recorder, problem, buffers, forward.keys, tiles.headDimQk, tiles.headDimV);
    kernelProblem = padded.problem;
    kernelBindings = { ...chunked, tensors: chunked.tensors.filter((t) => t.name !== 'k' && t.name !== 'v') };
    whole = [...whole, [BINDING.first + 1, padded.k], [BINDING.first + 2, padded.v], [BINDING.first + 5, padded.nanFlags]];
  }
  dispatchChunks(
    recorder,
    source,
    kernelProblem,
    kernelBindings,
    chunks,
    { ...buffers },
    whole,
    (chunk) => packFlashUniforms(kernelProblem, undefined, undefined, residual, chunk),
    (chunk) => [Math.ceil(chunk.rows.count / rowsPerWorkgroup), chunk.heads.count, chunk.batch.count],
    [logsumexpBinding(recorder, problem, 'query', { buffer: buffers.logsumexp, residual, limit, binding: BINDING.first + 4, access: 'write', chunks })],
  );
}

/**
 * FlashAttention forward on plain GPUBuffers: out = softmax(scale · q kᵀ + masks) v and the row logsumexp
 * (f32, −∞ for rows without any allowed key, whose output is 0). Semantics: `AttentionProblem`'s header in
 * @webattn/tensor. Without `options.encoder` it submits to `device.queue` itself; with one it only records, and
 * the caller submits and then calls `release()`. Throws InvalidArgumentError listing every `checkFlash` rejection,
 * and ShapeError when a buffer is smaller than the layout needs.
 */
export function flashAttentionForward(
  device: GPUDevice,
  problem: AttentionProblem,
  buffers: FlashForwardBuffers,
  options: FlashRecordOptions = {},
): FlashRecording {
  const caps = recordingCaps(device, options);
  assertRunnable(checkFlash({ ...problem, requiresGrad: false }, caps), 'flashAttentionForward');
  assertProblemBuffers(problem, buffers);
  const encoder = options.encoder ?? device.createCommandEncoder({ label: 'flash forward' });
  const recorder = rawRecorder(device, encoder);
  recordFlashForward(recorder, caps, problem, buffers);
  if (options.encoder) return { release: () => recorder.finish() };
  device.queue.submit([encoder.finish()]);
  recorder.finish();
  return { release: () => undefined };
}
