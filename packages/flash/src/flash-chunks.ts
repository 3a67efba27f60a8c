/**
 * Which buffer ranges each flash kernel binds for a chunk of batch entries × heads × rows (binding-chunks.ts
 * plans the chunks), and the dispatch arguments of one chunk: sub-range bindings plus the uniforms that shift
 * the tensors' offsets and give the chunk's bases. Used by the recording functions and by `checkFlash` and
 * `checkSplitKv` (to refuse only problems whose smallest chunk still does not fit a binding).
 */
import { InvalidArgumentError, type AttentionLayout, type AttentionProblem, type KernelSource } from '@webattn/tensor';
import {
  bindingWindow,
  planChunks,
  shiftedOffset,
  stridedRange,
  windowBytes,
  type Chunk,
  type ElementRange,
  type IndexRange,
  type Overflow,
} from './binding-chunks';
import { BINDING } from './flash-kernels';
import type { ChunkUniforms, GradientLayouts } from './flash-uniforms';
import type { BoundBuffer, KernelRecorder } from './recorder';

/** minStorageBufferOffsetAlignment: 256 is WebGPU's default and the largest value a device may ask for. */
export const BINDING_ALIGNMENT = 256;
/** Row chunks start at multiples of this (the dK/dV kernel's query tiles, ≤ 64 rows, divide it); row-tiled kernels stop at the chunk's row_end. */
export const ROW_STEP = 256;

export type FlashTensorName = 'q' | 'k' | 'v' | 'out' | 'gradOut' | 'dq' | 'dk' | 'dv' | 'mask';

/** A tensor a kernel binds in pieces: its binding number, offset uniform, element size and range per chunk. */
export interface ChunkedTensor {
  readonly name: FlashTensorName;
  readonly binding: number;
  readonly uniform: `${string}_offset`;
  readonly offset: number;
  readonly bytes: number;
  readonly range: (chunk: Chunk) => ElementRange;
}

/** Host copies of the packed varlen offsets (cu_seqlens, B + 1 values each). */
export interface PackedRows {
  readonly cuSeqlensQ: ArrayLike<number>;
  readonly cuSeqlensK: ArrayLike<number>;
}

/**
 * Where the rows of packed varlen sequences lie, so that a chunk of sequences binds only their rows:
 * - host offsets (`PackedRows`): the exact rows [cu[b0], cu[b1]) (query side of a row chunk: from row r0 on);
 * - 'longest' (checks, which have no offsets): every sequence as long as the longest, each tensor's rows starting
 *   at the least favourable alignment, so that a chunk fitting there fits under any real packing;
 * - undefined (the raw-buffer API without host offsets): not split, q, k, v, ... bound whole.
 */
export type Packing = PackedRows | 'longest' | undefined;

/** What a kernel binds: tensors split per chunk, plus buffers bound whole (sizes per chunk, for the limit). */
export interface KernelBindings {
  /** 'rows': chunks of query heads and query rows; 'keys': chunks of kv heads, all keys (dK/dV). */
  readonly over: 'rows' | 'keys';
  /** Packed varlen without host offsets: one chunk, tensors bound whole (`assertWholeBuffersFit` checks them). */
  readonly bindWhole: boolean;
  readonly tensors: readonly ChunkedTensor[];
  readonly whole: (chunk: Chunk) => readonly { readonly name: string; readonly bytes: number }[];
}

const elementBytes = (problem: AttentionProblem) => (problem.dtype === 'f16' ? 2 : 4);

function layoutRange(layout: AttentionLayout, batch: IndexRange, heads: IndexRange, rows: IndexRange, dim: number): ElementRange {
  return stridedRange(layout.offset, [
    { stride: layout.batch, ...batch },
    { stride: layout.head, ...heads },
    { stride: layout.sequence, ...rows },
    { stride: layout.dim, start: 0, count: dim },
  ]);
}

/** The kv heads a range of query heads reads (GQA: head h reads kv head ⌊h / group⌋). */
function kvHeadsOf(heads: IndexRange, group: number): IndexRange {
  const start = Math.floor(heads.start / group);
  return { start, count: Math.floor((heads.start + heads.count - 1) / group) - start + 1 };
}

/** The query heads that share a range of kv heads. */
function queryHeadsOf(kvHeads: IndexRange, group: number): IndexRange {
  return { start: kvHeads.start * group, count: kvHeads.count * group };
}

type Side = 'query' | 'key';

/**
 * The packed rows a chunk of sequences reads on one side: [cu[b0] + r0, cu[b1 − 1] + r1) for rows [r0, r1) of
 * each sequence, clipped to the sequences' lengths (the rows of sequences in between lie inside).
 */
export function packedRowRange(cu: ArrayLike<number>, batch: IndexRange, rows: IndexRange): IndexRange {
  const first = batch.start;
  const last = batch.start + batch.count - 1;
  const start = cu[first]! + Math.min(rows.start, cu[first + 1]! - cu[first]!);
  const end = cu[last]! + Math.min(rows.start + rows.count, cu[last + 1]! - cu[last]!);
  return { start, count: Math.max(0, end - start) };
}

/** Offsets of B sequences all as long as the longest (`length`): 0, length, 2·length, ... */
function longestOffsets(batch: number, length: number): number[] {
  return Array.from({ length: batch + 1 }, (_, b) => b * length);
}

/** A range as long as `range` whose first element sits just past an aligned boundary: the largest window it can get. */
function leastAligned(range: ElementRange, bytes: number): ElementRange {
  if (range.end <= range.first) return range;
  const lead = BINDING_ALIGNMENT / bytes - 1;
  return { first: lead, end: lead + range.end - range.first };
}

/**
 * A tensor of the query side ([B, Hq, L, D]: q, out, gradOut, dq) or the key side ([B, Hkv, S, D]: k, v, dk, dv)
 * for a kernel chunked over `over`.
 */
function tensor(
  problem: AttentionProblem,
  over: KernelBindings['over'],
  name: FlashTensorName,
  binding: number,
  uniform: ChunkedTensor['uniform'],
  layout: AttentionLayout,
  side: Side,
  dim: number,
  packing: Packing,
): ChunkedTensor {
  const group = problem.queryHeads / problem.kvHeads;
  const bytes = elementBytes(problem);
  const all = (count: number): IndexRange => ({ start: 0, count });
  const padded = (batch: IndexRange, heads: IndexRange, rows: IndexRange) => layoutRange(layout, batch, heads, rows, dim);
  // Packed varlen: one sequence axis (batch stride 0) holding the chunk's sequences' rows.
  const host = typeof packing === 'object' ? packing : null;
  const longest = side === 'query' ? problem.queryLength : problem.keyLength;
  const cu = !problem.varlen ? [] : host ? (side === 'query' ? host.cuSeqlensQ : host.cuSeqlensK) : longestOffsets(problem.batch, longest);
  const packed = (batch: IndexRange, heads: IndexRange, rows: IndexRange) => {
    const range = layoutRange(layout, all(1), heads, packedRowRange(cu, batch, rows), dim);
    return host ? range : leastAligned(range, bytes);
  };
  const rangeOf = problem.varlen ? packed : padded;
  const range = (chunk: Chunk): ElementRange => {
    if (over === 'rows') {
      return side === 'query'
        ? rangeOf(chunk.batch, chunk.heads, chunk.rows)
        : rangeOf(chunk.batch, kvHeadsOf(chunk.heads, group), all(problem.keyLength));
    }
    return side === 'query'
      ? rangeOf(chunk.batch, queryHeadsOf(chunk.heads, group), all(problem.queryLength))
      : rangeOf(chunk.batch, chunk.heads, chunk.rows);
  };
  return { name, binding, uniform, offset: layout.offset, bytes, range };
}

/** The mask (when the problem has one) over the chunk's batch entries, query heads and rows, all keys. */
function maskTensor(problem: AttentionProblem, over: KernelBindings['over']): ChunkedTensor[] {
  const mask = problem.mask;
  if (mask.kind === 'none') return [];
  const group = problem.queryHeads / problem.kvHeads;
  const bytes = mask.dtype === 'bool' ? 1 : mask.dtype === 'f16' ? 2 : 4;
  const range = (chunk: Chunk) => {
    const heads = over === 'rows' ? chunk.heads : queryHeadsOf(chunk.heads, group);
    const rows = over === 'rows' ? chunk.rows : { start: 0, count: problem.queryLength };
    return stridedRange(mask.offset, [
      { stride: mask.strides.batch, ...chunk.batch },
      { stride: mask.strides.head, ...heads },
      { stride: mask.strides.row, ...rows },
      { stride: mask.strides.column, start: 0, count: problem.keyLength },
    ]);
  };
  return [{ name: 'mask', binding: BINDING.mask, uniform: 'mask_offset', offset: mask.offset, bytes, range }];
}

/** Bytes of the f32 logsumexp buffer (twice B·Hq·L with the rounding residual): bound whole. */
export function logsumexpBytes(problem: AttentionProblem, residual: boolean): number {
  return problem.batch * problem.queryHeads * problem.queryLength * 4 * (residual ? 2 : 1);
}

const FIRST = BINDING.first;

/** The inputs every attention kernel binds first: the mask (if any), then q, k and v at FIRST..FIRST + 2. */
function attentionInputs(problem: AttentionProblem, over: KernelBindings['over'], packing: Packing): ChunkedTensor[] {
  const { layout, headDimQk, headDimV } = problem;
  return [
    ...maskTensor(problem, over),
    tensor(problem, over, 'q', FIRST, 'q_offset', layout.q, 'query', headDimQk, packing),
    tensor(problem, over, 'k', FIRST + 1, 'k_offset', layout.k, 'key', headDimQk, packing),
    tensor(problem, over, 'v', FIRST + 2, 'v_offset', layout.v, 'key', headDimV, packing),
  ];
}

/** Packed varlen without host offsets cannot be split: its kernels bind whole buffers. */
const bindsWhole = (problem: AttentionProblem, packing: Packing) => problem.varlen && packing === undefined;

export function forwardBindings(problem: AttentionProblem, residual: boolean, packing?: Packing): KernelBindings {
  const lse = logsumexpBytes(problem, residual);
  return {
    over: 'rows',
    bindWhole: bindsWhole(problem, packing),
    tensors: [
      ...attentionInputs(problem, 'rows', packing),
      tensor(problem, 'rows', 'out', FIRST + 3, 'o_offset', problem.layout.out, 'query', problem.headDimV, packing),
    ],
    whole: () => [{ name: 'logsumexp', bytes: lse }],
  };
}

/** Backward kernels: delta = rowsum(dO ∘ O), dQ (chunked over query rows) and dK/dV (chunked over kv heads). */
export function backwardBindings(
  problem: AttentionProblem,
  gradients: GradientLayouts,
  residual: boolean,
  packing?: Packing,
): { delta: KernelBindings; query: KernelBindings; keyValue: KernelBindings } {
  const { layout, headDimQk, headDimV } = problem;
  const bindWhole = bindsWhole(problem, packing);
  const whole = () => [
    { name: 'logsumexp', bytes: logsumexpBytes(problem, residual) },
    { name: 'delta', bytes: logsumexpBytes(problem, false) },
  ];
  const inputs = (over: KernelBindings['over']) => [
    ...attentionInputs(problem, over, packing),
    tensor(problem, over, 'gradOut', FIRST + 3, 'g_offset', gradients.gradOut, 'query', headDimV, packing),
  ];
  return {
    delta: {
      over: 'rows',
      bindWhole,
      tensors: [
        tensor(problem, 'rows', 'out', FIRST, 'o_offset', layout.out, 'query', headDimV, packing),
        tensor(problem, 'rows', 'gradOut', FIRST + 1, 'g_offset', gradients.gradOut, 'query', headDimV, packing),
      ],
      whole: () => [{ name: 'delta', bytes: logsumexpBytes(problem, false) }],
    },
    query: {
      over: 'rows',
      bindWhole,
      tensors: [...inputs('rows'), tensor(problem, 'rows', 'dq', FIRST + 6, 'dq_offset', gradients.dq, 'query', headDimQk, packing)],
      whole,
    },
    keyValue: {
      over: 'keys',
      bindWhole,
      tensors: [
        ...inputs('keys'),
        tensor(problem, 'keys', 'dk', FIRST + 6, 'dk_offset', gradients.dk, 'key', headDimQk, packing),
        tensor(problem, 'keys', 'dv', FIRST + 7, 'dv_offset', gradients.dv, 'key', headDimV, packing),
      ],
      whole,
    },
  };
}

/** Split-KV (no packed varlen: checkSplitKv refuses it): the partial pass reads q, k, v (and the mask), the combine writes out; scratch per chunk. */
export function splitKvBindings(problem: AttentionProblem, splitCount: number): { partial: KernelBindings; combine: KernelBindings } {
  const { layout, headDimV } = problem;
  const scratch = (chunk: Chunk) => {
    const partials = chunk.batch.count * chunk.heads.count * problem.queryLength * splitCount;
    return [
      { name: 'split-kv partial out', bytes: partials * headDimV * 4 },
      { name: 'split-kv partial stats', bytes: partials * 2 * 4 },
    ];
  };
  return {
    partial: {
      over: 'rows',
      bindWhole: problem.varlen,
      tensors: attentionInputs(problem, 'rows', undefined),
      whole: scratch,
    },
    combine: {
      over: 'rows',
      bindWhole: problem.varlen,
      tensors: [tensor(problem, 'rows', 'out', FIRST + 2, 'o_offset', layout.out, 'query', headDimV, undefined)],
      whole: (chunk) => [...scratch(chunk), { name: 'logsumexp', bytes: logsumexpBytes(problem, false) }],
    },
  };
}

/**
 * dK/dV when the query rows of one kv head's query heads do not fit a binding: the key-value kernel runs over
 * chunks of one kv group's query heads × query rows (in the unsplit order), summing into f32 scratch [S, D];
 * flash-backward-finish.wgsl then writes dk and dv (`finish`, one kv head per dispatch).
 */
export function keyValuePartialBindings(
  problem: AttentionProblem,
  gradients: GradientLayouts,
  residual: boolean,
  packing?: Packing,
): { partial: KernelBindings; finish: KernelBindings } {
  const { headDimQk, headDimV, keyLength } = problem;
  const group = problem.queryHeads / problem.kvHeads;
  const bindWhole = bindsWhole(problem, packing);
  const finish: KernelBindings = {
    over: 'keys',
    bindWhole,
    tensors: [
      tensor(problem, 'keys', 'dk', FIRST + 2, 'dk_offset', gradients.dk, 'key', headDimQk, packing),
      tensor(problem, 'keys', 'dv', FIRST + 3, 'dv_offset', gradients.dv, 'key', headDimV, packing),
    ],
    whole: () => [],
  };
  return {
    partial: {
      over: 'rows',
      bindWhole,
      tensors: [
        ...attentionInputs(problem, 'rows', packing),
        tensor(problem, 'rows', 'gradOut', FIRST + 3, 'g_offset', gradients.gradOut, 'query', headDimV, packing),
      ],
      whole: (chunk) => {
        const keys: Chunk = { batch: chunk.batch, heads: kvHeadsOf(chunk.heads, group), rows: { start: 0, count: keyLength } };
        return [
          { name: 'logsumexp', bytes: logsumexpBytes(problem, residual) },
          { name: 'delta', bytes: logsumexpBytes(problem, false) },
          { name: 'dk scratch', bytes: keyLength * headDimQk * 4 },
          { name: 'dv scratch', bytes: keyLength * headDimV * 4 },
          ...finish.tensors.map((t) => ({ name: t.name, bytes: windowBytes(t.range(keys), t.bytes, BINDING_ALIGNMENT) })),
        ];
      },
    },
    finish,
  };
}

/** How dK/dV runs: chunks of kv heads, or per kv head in chunks of its query heads × rows (`partial`). */
export type KeyValuePlan =
  | { readonly direct: readonly Chunk[] }
  | { readonly partial: readonly (readonly Chunk[])[] }
  | { readonly overflow: Overflow };

export function planKeyValue(problem: AttentionProblem, gradients: GradientLayouts, residual: boolean, limit: number, packing?: Packing): KeyValuePlan {
  const direct = planKernelChunks(problem, backwardBindings(problem, gradients, residual, packing).keyValue, limit);
  if ('chunks' in direct) return { direct: direct.chunks };
  const { partial } = keyValuePartialBindings(problem, gradients, residual, packing);
  const group = problem.queryHeads / problem.kvHeads;
  const perKvHead: (readonly Chunk[])[] = [];
  for (let b = 0; b < problem.batch; b++) {
    for (let kvHead = 0; kvHead < problem.kvHeads; kvHead++) {
      const extent: Chunk = {
        batch: { start: b, count: 1 },
        heads: { start: kvHead * group, count: group },
        rows: { start: 0, count: problem.queryLength },
      };
      const plan = planChunks(extent, ROW_STEP, limit, bindingBytes(partial));
      if ('overflow' in plan) return plan;
      perKvHead.push(plan.chunks);
    }
  }
  return { partial: perKvHead };
}

/** The bytes each binding of a kernel takes for a chunk (tensor windows and whole buffers). */
function bindingBytes(kernel: KernelBindings): (chunk: Chunk) => { name: string; bytes: number }[] {
  return (chunk) => [
    ...kernel.tensors.map((t) => ({ name: t.name, bytes: windowBytes(t.range(chunk), t.bytes, BINDING_ALIGNMENT) })),
    ...kernel.whole(chunk),
  ];
}

/** The whole problem as one chunk. */
export function wholeProblem(problem: AttentionProblem, over: KernelBindings['over']): Chunk {
  return {
    batch: { start: 0, count: problem.batch },
    heads: { start: 0, count: over === 'rows' ? problem.queryHeads : problem.kvHeads },
    rows: { start: 0, count: over === 'rows' ? problem.queryLength : problem.keyLength },
  };
}

/**
 * Chunks for one kernel whose bindings each fit `limit` bytes, or the largest binding of its smallest chunk.
 * Packed varlen problems split over sequences like batch entries when the kernel knows their rows (`Packing`);
 * without host offsets they are one chunk binding whole buffers (see `assertWholeBuffersFit`).
 */
export function planKernelChunks(
  problem: AttentionProblem,
  kernel: KernelBindings,
  limit: number,
  rowStep = ROW_STEP,
): { readonly chunks: readonly Chunk[] } | { readonly overflow: Overflow } {
  const extent = wholeProblem(problem, kernel.over);
  if (kernel.bindWhole) return { chunks: [extent] };
  const step = kernel.over === 'rows' ? rowStep : extent.rows.count;
  return planChunks(extent, step, limit, bindingBytes(kernel));
}

/** Bindings (buffer sub-ranges) and uniforms (bases, head count, shifted offsets) of one chunk. */
export function chunkArguments(
  problem: AttentionProblem,
  kernel: KernelBindings,
  chunk: Chunk,
  buffers: Readonly<Partial<Record<FlashTensorName, GPUBuffer>>>,
): { bindings: [number, BoundBuffer][]; uniforms: ChunkUniforms } {
  const bindings: [number, BoundBuffer][] = [];
  const uniforms: Record<string, number> = {
    batch_base: chunk.batch.start,
    head_base: chunk.heads.start,
    row_base: chunk.rows.start,
    row_end: chunk.rows.start + chunk.rows.count,
    head_count: chunk.heads.count,
  };
  for (const t of kernel.tensors) {
    const buffer = buffers[t.name];
    if (!buffer) throw new Error(`flash: no ${t.name} buffer for binding ${t.binding}`);
    if (kernel.bindWhole) {
      bindings.push([t.binding, buffer]);
      continue;
    }
    const window = bindingWindow(t.range(chunk), t.bytes, BINDING_ALIGNMENT, buffer.size);
    bindings.push([t.binding, { buffer, offset: window.offset, size: window.size }]);
    uniforms[t.uniform] = shiftedOffset(t.offset, window.shift);
  }
  return { bindings, uniforms };
}

/** The chunks of a kernel, or an InvalidArgumentError naming the binding that does not fit even one head. */
export function requireChunks(problem: AttentionProblem, kernel: KernelBindings, limit: number, what: string): readonly Chunk[] {
  const plan = planKernelChunks(problem, kernel, limit);
  if ('chunks' in plan) return plan.chunks;
  throw new InvalidArgumentError(`${what} cannot run this problem:\n  - ${overflowMessage(plan.overflow, limit)}`);
}

/**
 * Packed varlen through the raw-buffer API without `packedRows` (host copies of cu_seqlens): the kernels bind q,
 * k, v, ... whole, so each buffer must fit one binding. Throws InvalidArgumentError naming the first that does not.
 */
export function assertWholeBuffersFit(
  kernels: readonly KernelBindings[],
  buffers: Readonly<Partial<Record<FlashTensorName, GPUBuffer>>>,
  limit: number,
  what: string,
): void {
  for (const kernel of kernels.filter((k) => k.bindWhole)) {
    for (const t of kernel.tensors) {
      const size = buffers[t.name]?.size ?? 0;
      if (size > limit) {
        throw new InvalidArgumentError(
          `${what} cannot run this problem:\n  - the ${t.name} buffer (${size} B) is bound whole, need ≤ ${limit} B (maxStorageBufferBindingSize): packed varlen buffers are split over sequences only when buffers.packedRows gives the host copies of cuSeqlensQ/K; pass them, or use flashAttention`,
        );
      }
    }
  }
}

/** "the k binding of one chunk needs N B, the limit is M B (...)" */
export function overflowMessage(overflow: Overflow, limit: number): string {
  return `${overflow.name} binding size ${overflow.bytes} B, need ≤ ${limit} B (maxStorageBufferBindingSize; flash splits the dispatch over batch entries, heads and query rows, but binds the keys and values of one kv head, the logsumexp and the backward's delta whole)`;
}

/**
 * Records one kernel over its chunks: each dispatch binds the chunk's sub-ranges plus `whole` (buffers bound
 * entirely), with the uniforms `uniforms(chunk's bases and offsets)` and `workgroups(chunk)`.
 */
export function dispatchChunks(
  recorder: KernelRecorder,
  source: KernelSource,
  problem: AttentionProblem,
  kernel: KernelBindings,
  chunks: readonly Chunk[],
  buffers: Readonly<Partial<Record<FlashTensorName, GPUBuffer>>>,
  whole: readonly (readonly [number, BoundBuffer])[],
  uniforms: (chunk: ChunkUniforms) => ArrayBuffer,
  workgroups: (chunk: Chunk) => readonly [number, number, number],
): void {
  for (const chunk of chunks) {
    const args = chunkArguments(problem, kernel, chunk, buffers);
    recorder.dispatch(source, [...whole, ...args.bindings], uniforms(args.uniforms), workgroups(chunk));
  }
}
