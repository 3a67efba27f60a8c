/**
 * Which buffer ranges each flash kernel binds for a chunk of batch entries × heads × query rows × keys
 * (binding-chunks.ts plans the chunks), and the dispatch arguments of one chunk: sub-range bindings plus the
 * uniforms that shift the tensors' offsets and give the chunk's bases. The logsumexp and delta bindings follow
 * the chunk's rows (row-stats.ts). Used by the recording functions and by `checkFlash` and `checkSplitKv` (to
 * refuse only problems whose smallest chunk still does not fit a binding).
 */
import { InvalidArgumentError, type AttentionLayout, type AttentionProblem, type KernelSource } from '@webattn/tensor';
import {
  bindingWindow,
  planChunks,
  shiftedOffset,
  stridedRange,
  windowBytes,
  type Chunk,
  type ChunkSteps,
  type ElementRange,
  type IndexRange,
  type Overflow,
} from './binding-chunks';
import { BINDING } from './flash-kernels';
import type { ChunkUniforms, GradientLayouts } from './flash-uniforms';
import type { BoundBuffer, KernelRecorder } from './recorder';
import { chunkRows, deltaBindingBytes, logsumexpBindingBytes, type ChunkBinding, type ChunkHeads } from './row-stats';

/** minStorageBufferOffsetAlignment: 256 is WebGPU's default and the largest value a device may ask for. */
export const BINDING_ALIGNMENT = 256;
/** Row chunks start at multiples of this unless nothing that coarse fits (the backward: BACKWARD_MIN_ROW_STEP); row-tiled kernels stop at the chunk's row_end. */
export const ROW_STEP = 256;
/**
 * Every dK/dV query tile divides this (BLOCK_M: the tiled kernel's 4 · key threads, key threads 4, 8 or 16; the
 * compact kernel's backwardRows, a power of two ≤ 64): backward row chunks at multiples of it hold whole tiles and
 * give the unsplit bits (the f32 dK/dV sums continue over the chunks in the unsplit order).
 */
export const BACKWARD_TILE_ROWS = 64;
/**
 * The backward's row chunks: multiples of ROW_STEP, or, when none of those fits (e.g. 256 rows of a dense mask
 * over many keys), of its halves down to single rows, so that the backward refuses only when one row × KEY_STEP
 * keys of a binding does not fit. Chunks at multiples of BACKWARD_TILE_ROWS give the unsplit bits. A smaller chunk
 * may end inside a dK/dV query tile: the kernels stage the tile's rows outside [row_base, row_end) as absent (q and
 * dO zero, logsumexp −∞), so each row still adds its terms once, but a tile's rows are added in a different
 * grouping (the tiled kernel sums 4 rows per dot product): within rounding of the unsplit results, not bit for bit.
 * dQ and delta compute each row on its own and stop at the chunk's row_end, so their workgroups may span a chunk
 * boundary (the key tiles only a dQ workgroup's other rows attend add zero products of finite keys to a row's
 * sums, which leave them unchanged).
 */
export const BACKWARD_MIN_ROW_STEP = 1;
/**
 * Key chunks start at multiples of this: the dQ kernel's key tiles (≤ 64 keys) and the dK/dV kernel's workgroups
 * (their keys divide it: tiledShapeFits in flash-tiles.ts) do too, so a chunk's keys are whole tiles and
 * workgroups, as in the unsplit run.
 */
export const KEY_STEP = 256;

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

/** A binding's size for a chunk (compared with the limit when planning). */
export interface BindingSize {
  readonly name: string;
  readonly bytes: number;
}

/** What a kernel binds: tensors split per chunk, plus other buffers (their sizes per chunk and limit, for planning). */
export interface KernelBindings {
  /** 'query': chunks of query heads; 'kv': chunks of kv heads with all their query heads (dK/dV). */
  readonly heads: ChunkHeads;
  /** How its rows and keys may split (binding-chunks.ts). */
  readonly steps: ChunkSteps;
  /** Packed varlen without host offsets: one chunk, tensors bound whole (`assertWholeBuffersFit` checks them). */
  readonly bindWhole: boolean;
  readonly tensors: readonly ChunkedTensor[];
  /** Its other bindings (scratch, logsumexp, delta): their sizes for a chunk under a binding limit. */
  readonly others: (chunk: Chunk, limit: number) => readonly BindingSize[];
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
 * A tensor of the query side ([B, Hq, L, D]: q, out, gradOut, dq; a chunk's rows) or the key side
 * ([B, Hkv, S, D]: k, v, dk, dv; a chunk's keys) for a kernel whose chunks cover `heads`.
 */
function tensor(
  problem: AttentionProblem,
  heads: ChunkHeads,
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
  const padded = (batch: IndexRange, headRange: IndexRange, rows: IndexRange) => layoutRange(layout, batch, headRange, rows, dim);
  // Packed varlen: one sequence axis (batch stride 0) holding the chunk's sequences' rows.
  const host = typeof packing === 'object' ? packing : null;
  const longest = side === 'query' ? problem.queryLength : problem.keyLength;
  const cu = !problem.varlen ? [] : host ? (side === 'query' ? host.cuSeqlensQ : host.cuSeqlensK) : longestOffsets(problem.batch, longest);
  const packed = (batch: IndexRange, headRange: IndexRange, rows: IndexRange) => {
    const range = layoutRange(layout, all(1), headRange, packedRowRange(cu, batch, rows), dim);
    return host ? range : leastAligned(range, bytes);
  };
  const rangeOf = problem.varlen ? packed : padded;
  const range = (chunk: Chunk): ElementRange => {
    if (side === 'query') return rangeOf(chunk.batch, heads === 'query' ? chunk.heads : queryHeadsOf(chunk.heads, group), chunk.rows);
    return rangeOf(chunk.batch, heads === 'query' ? kvHeadsOf(chunk.heads, group) : chunk.heads, chunk.keys);
  };
  return { name, binding, uniform, offset: layout.offset, bytes, range };
}

/** The mask (when the problem has one) over the chunk's batch entries, query heads, rows and keys. */
function maskTensor(problem: AttentionProblem, heads: ChunkHeads): ChunkedTensor[] {
  const mask = problem.mask;
  if (mask.kind === 'none') return [];
  const group = problem.queryHeads / problem.kvHeads;
  const bytes = mask.dtype === 'bool' ? 1 : mask.dtype === 'f16' ? 2 : 4;
  const range = (chunk: Chunk) =>
    stridedRange(mask.offset, [
      { stride: mask.strides.batch, ...chunk.batch },
      { stride: mask.strides.head, ...(heads === 'query' ? chunk.heads : queryHeadsOf(chunk.heads, group)) },
      { stride: mask.strides.row, ...chunk.rows },
      { stride: mask.strides.column, ...chunk.keys },
    ]);
  return [{ name: 'mask', binding: BINDING.mask, uniform: 'mask_offset', offset: mask.offset, bytes, range }];
}

/** The logsumexp binding's size for a chunk (row-stats.ts). */
const logsumexpSize = (problem: AttentionProblem, residual: boolean, heads: ChunkHeads) => (chunk: Chunk, limit: number): BindingSize => ({
  name: 'logsumexp',
  bytes: logsumexpBindingBytes(problem, residual, limit, chunkRows(problem, heads, chunk)),
});

const deltaSize = (problem: AttentionProblem, heads: ChunkHeads) => (chunk: Chunk, limit: number): BindingSize => ({
  name: 'delta',
  bytes: deltaBindingBytes(problem, limit, chunkRows(problem, heads, chunk)),
});

const FIRST = BINDING.first;

/** The backward's row steps: ROW_STEP, halved down to BACKWARD_MIN_ROW_STEP while no multiple of the last fits. */
const BACKWARD_ROW_STEPS = { rows: ROW_STEP, smallestRows: BACKWARD_MIN_ROW_STEP } as const;

/** The inputs every attention kernel binds first: the mask (if any), then q, k and v at FIRST..FIRST + 2. */
function attentionInputs(problem: AttentionProblem, heads: ChunkHeads, packing: Packing): ChunkedTensor[] {
  const { layout, headDimQk, headDimV } = problem;
  return [
    ...maskTensor(problem, heads),
    tensor(problem, heads, 'q', FIRST, 'q_offset', layout.q, 'query', headDimQk, packing),
    tensor(problem, heads, 'k', FIRST + 1, 'k_offset', layout.k, 'key', headDimQk, packing),
    tensor(problem, heads, 'v', FIRST + 2, 'v_offset', layout.v, 'key', headDimV, packing),
  ];
}

/** Packed varlen without host offsets cannot be split: its kernels bind whole buffers. */
const bindsWhole = (problem: AttentionProblem, packing: Packing) => problem.varlen && packing === undefined;

/** The flash forward kernel: chunks of query heads × rows, all keys (it cannot split them; see splitKvBindings). */
export function forwardBindings(problem: AttentionProblem, residual: boolean, packing?: Packing): KernelBindings {
  return {
    heads: 'query',
    steps: { rows: ROW_STEP, keys: 0 },
    bindWhole: bindsWhole(problem, packing),
    tensors: [
      ...attentionInputs(problem, 'query', packing),
      tensor(problem, 'query', 'out', FIRST + 3, 'o_offset', problem.layout.out, 'query', problem.headDimV, packing),
    ],
    others: (chunk, limit) => [logsumexpSize(problem, residual, 'query')(chunk, limit)],
  };
}

/**
 * The f32 scratch in which dQ sums over key chunks (flash-backward-query.wgsl compiled with f32 gradients), as a
 * layout seen through the dq_* uniforms: the chunk's rows packed [batch entries, heads, rows, Dqk] (packed varlen:
 * [its packed rows, heads, Dqk]), offset back by the chunk's first element so that global indices land in it.
 */
export function queryScratch(problem: AttentionProblem, chunk: Chunk, packing: Packing): { layout: AttentionLayout; elements: number } {
  const dim = problem.headDimQk;
  const heads = chunk.heads.count;
  if (problem.varlen && typeof packing === 'object') {
    const rows = packedRowRange(packing.cuSeqlensQ, chunk.batch, chunk.rows);
    const sequence = heads * dim;
    const first = rows.start * sequence + chunk.heads.start * dim;
    return { layout: { batch: 0, head: dim, sequence, dim: 1, offset: shiftedOffset(0, first) }, elements: Math.max(1, rows.count * sequence) };
  }
  // Padded (and the 'longest' estimate of packed varlen, every sequence as long as the longest).
  const head = chunk.rows.count * dim;
  const batch = heads * head;
  const first = chunk.batch.start * batch + chunk.heads.start * head + chunk.rows.start * dim;
  return { layout: { batch, head, sequence: dim, dim: 1, offset: shiftedOffset(0, first) }, elements: Math.max(1, chunk.batch.count * batch) };
}

/**
 * Backward kernels: delta = rowsum(dO ∘ O) (chunks of query heads × rows), dQ (query heads × rows × keys: over
 * several key chunks it sums in f32 scratch) and dK/dV (kv heads × keys, all query rows).
 */
export function backwardBindings(
  problem: AttentionProblem,
  gradients: GradientLayouts,
  residual: boolean,
  packing?: Packing,
): { delta: KernelBindings; query: KernelBindings; keyValue: KernelBindings } {
  const { layout, headDimQk, headDimV } = problem;
  const bindWhole = bindsWhole(problem, packing);
  const rowStats = (heads: ChunkHeads) => (chunk: Chunk, limit: number) => [
    logsumexpSize(problem, residual, heads)(chunk, limit),
    deltaSize(problem, heads)(chunk, limit),
  ];
  const inputs = (heads: ChunkHeads) => [
    ...attentionInputs(problem, heads, packing),
    tensor(problem, heads, 'gradOut', FIRST + 3, 'g_offset', gradients.gradOut, 'query', headDimV, packing),
  ];
  return {
    delta: {
      heads: 'query',
      steps: { ...BACKWARD_ROW_STEPS, keys: 0 },
      bindWhole,
      tensors: [
        tensor(problem, 'query', 'out', FIRST, 'o_offset', layout.out, 'query', headDimV, packing),
        tensor(problem, 'query', 'gradOut', FIRST + 1, 'g_offset', gradients.gradOut, 'query', headDimV, packing),
      ],
      others: (chunk, limit) => [deltaSize(problem, 'query')(chunk, limit)],
    },
    query: {
      heads: 'query',
      steps: { ...BACKWARD_ROW_STEPS, keys: KEY_STEP },
      bindWhole,
      tensors: [...inputs('query'), tensor(problem, 'query', 'dq', FIRST + 6, 'dq_offset', gradients.dq, 'query', headDimQk, packing)],
      others: (chunk, limit) => [
        ...rowStats('query')(chunk, limit),
        ...(chunk.keys.count < problem.keyLength ? [{ name: 'dq scratch', bytes: queryScratch(problem, chunk, packing).elements * 4 }] : []),
      ],
    },
    keyValue: {
      heads: 'kv',
      steps: { rows: 0, keys: KEY_STEP },
      bindWhole,
      tensors: [
        ...inputs('kv'),
        tensor(problem, 'kv', 'dk', FIRST + 6, 'dk_offset', gradients.dk, 'key', headDimQk, packing),
        tensor(problem, 'kv', 'dv', FIRST + 7, 'dv_offset', gradients.dv, 'key', headDimV, packing),
      ],
      others: rowStats('kv'),
    },
  };
}

/**
 * dQ over several key chunks: the dQ kernel without dq (its f32 scratch, `queryScratch`, binds there instead), and
 * the finish kernel that writes a row chunk's dq from the scratch (flash-backward-query-finish.wgsl).
 */
export function queryPartialBindings(
  problem: AttentionProblem,
  gradients: GradientLayouts,
  residual: boolean,
  packing?: Packing,
): { partial: KernelBindings; finish: KernelBindings } {
  const query = backwardBindings(problem, gradients, residual, packing).query;
  return {
    partial: { ...query, tensors: query.tensors.filter((t) => t.name !== 'dq') },
    finish: {
      ...query,
      tensors: [tensor(problem, 'query', 'dq', FIRST + 1, 'dq_offset', gradients.dq, 'query', problem.headDimQk, packing)],
      others: () => [],
    },
  };
}

/** How split-KV splits the keys: `count` splits of `length` keys (the last may be shorter). */
export interface SplitPlan {
  readonly count: number;
  readonly length: number;
}

/**
 * Split-KV (split-kv-partial.wgsl, then split-kv-combine.wgsl), which also runs the flash forward when one kv
 * head's keys exceed a binding. `plan` covers both passes: chunks of query heads × rows (any number) × keys (whole
 * splits), each binding fitting; the partial pass runs per chunk, writing every split's (m, l, acc) of the chunk's
 * rows into scratch, and the combine once per row chunk (all its keys). Scratch is per row chunk.
 */
export function splitKvBindings(
  problem: AttentionProblem,
  split: SplitPlan,
  residual: boolean,
  packing: Packing,
  maxWorkgroups = 65535,
): { plan: KernelBindings; partial: KernelBindings; combine: KernelBindings } {
  const bindWhole = bindsWhole(problem, packing);
  const steps: ChunkSteps = {
    rows: 1,
    keys: split.length,
    // The partial pass runs one workgroup row per (row, head) of the chunk.
    accept: (chunk) => chunk.rows.count * chunk.heads.count <= maxWorkgroups,
  };
  const scratch = (chunk: Chunk): BindingSize[] => {
    const partials = chunk.batch.count * chunk.heads.count * chunk.rows.count * split.count;
    return [
      { name: 'split-kv partial out', bytes: partials * problem.headDimV * 4 },
      { name: 'split-kv partial stats', bytes: partials * 2 * 4 },
    ];
  };
  const partial: KernelBindings = { heads: 'query', steps, bindWhole, tensors: attentionInputs(problem, 'query', packing), others: scratch };
  const combine: KernelBindings = {
    heads: 'query',
    steps,
    bindWhole,
    tensors: [tensor(problem, 'query', 'out', FIRST + 2, 'o_offset', problem.layout.out, 'query', problem.headDimV, packing)],
    others: (chunk, limit) => [...scratch(chunk), logsumexpSize(problem, residual, 'query')(chunk, limit)],
  };
  return { plan: { ...partial, tensors: [...partial.tensors, ...combine.tensors], others: combine.others }, partial, combine };
}

/**
 * dK/dV when the query rows of one kv head's query heads do not fit a binding: the key-value kernel runs over
 * chunks of one kv group's query heads × query rows × keys, summing into f32 scratch [keys of the chunk, D] over
 * the chunks of one key range (in the unsplit order: heads, then rows); flash-backward-finish.wgsl then writes
 * that key range of dk and dv (`finish`: one kv head × the key range per dispatch).
 */
export function keyValuePartialBindings(
  problem: AttentionProblem,
  gradients: GradientLayouts,
  residual: boolean,
  packing?: Packing,
): { partial: KernelBindings; finish: KernelBindings } {
  const { headDimQk, headDimV } = problem;
  const group = problem.queryHeads / problem.kvHeads;
  const bindWhole = bindsWhole(problem, packing);
  const finish: KernelBindings = {
    heads: 'kv',
    steps: { rows: 0, keys: KEY_STEP },
    bindWhole,
    tensors: [
      tensor(problem, 'kv', 'dk', FIRST + 2, 'dk_offset', gradients.dk, 'key', headDimQk, packing),
      tensor(problem, 'kv', 'dv', FIRST + 3, 'dv_offset', gradients.dv, 'key', headDimV, packing),
    ],
    others: () => [],
  };
  return {
    partial: {
      heads: 'query',
      steps: { ...BACKWARD_ROW_STEPS, keys: KEY_STEP },
      bindWhole,
      tensors: [
        ...attentionInputs(problem, 'query', packing),
        tensor(problem, 'query', 'gradOut', FIRST + 3, 'g_offset', gradients.gradOut, 'query', headDimV, packing),
      ],
      others: (chunk, limit) => {
        const keys = finishChunk(problem, chunk, group);
        return [
          logsumexpSize(problem, residual, 'query')(chunk, limit),
          deltaSize(problem, 'query')(chunk, limit),
          { name: 'dk scratch', bytes: chunk.keys.count * headDimQk * 4 },
          { name: 'dv scratch', bytes: chunk.keys.count * headDimV * 4 },
          ...finish.tensors.map((t) => ({ name: t.name, bytes: windowBytes(t.range(keys), t.bytes, BINDING_ALIGNMENT) })),
        ];
      },
    },
    finish,
  };
}

/** The finish dispatch of a partial dK/dV chunk: its kv head and keys, all rows. */
export function finishChunk(problem: AttentionProblem, chunk: Chunk, group: number): Chunk {
  return {
    batch: chunk.batch,
    heads: { start: Math.floor(chunk.heads.start / group), count: 1 },
    rows: { start: 0, count: problem.queryLength },
    keys: chunk.keys,
  };
}

/**
 * How dK/dV runs: chunks of kv heads × keys, or per kv head and key range in chunks of its query heads × rows
 * (`partial`: each list one kv head's key range, in the order its sums run).
 */
export type KeyValuePlan =
  | { readonly direct: readonly Chunk[] }
  | { readonly partial: readonly (readonly Chunk[])[] }
  | { readonly overflow: Overflow };

export function planKeyValue(problem: AttentionProblem, gradients: GradientLayouts, residual: boolean, limit: number, packing?: Packing): KeyValuePlan {
  const direct = planKernelChunks(problem, backwardBindings(problem, gradients, residual, packing).keyValue, limit);
  if ('chunks' in direct) return { direct: direct.chunks };
  const { partial } = keyValuePartialBindings(problem, gradients, residual, packing);
  const group = problem.queryHeads / problem.kvHeads;
  const lists: (readonly Chunk[])[] = [];
  for (let b = 0; b < problem.batch; b++) {
    for (let kvHead = 0; kvHead < problem.kvHeads; kvHead++) {
      const extent: Chunk = {
        batch: { start: b, count: 1 },
        heads: { start: kvHead * group, count: group },
        rows: { start: 0, count: problem.queryLength },
        keys: { start: 0, count: problem.keyLength },
      };
      const plan = planChunks(extent, limit, bindingBytes(partial, limit), partial.steps);
      if ('overflow' in plan) return plan;
      // Keys come innermost from planChunks: one list per key range, heads then rows inside (the unsplit order).
      const byKeys = new Map<number, Chunk[]>();
      for (const chunk of plan.chunks) {
        const list = byKeys.get(chunk.keys.start) ?? [];
        list.push(chunk);
        byKeys.set(chunk.keys.start, list);
      }
      lists.push(...byKeys.values());
    }
  }
  return { partial: lists };
}

/** The bytes each binding of a kernel takes for a chunk (tensor windows, scratch, logsumexp and delta). */
function bindingBytes(kernel: KernelBindings, limit: number): (chunk: Chunk) => BindingSize[] {
  return (chunk) => [
    ...kernel.tensors.map((t) => ({ name: t.name, bytes: windowBytes(t.range(chunk), t.bytes, BINDING_ALIGNMENT) })),
    ...kernel.others(chunk, limit),
  ];
}

/** The whole problem as one chunk (heads: query or kv heads). */
export function wholeProblem(problem: AttentionProblem, heads: ChunkHeads): Chunk {
  return {
    batch: { start: 0, count: problem.batch },
    heads: { start: 0, count: heads === 'query' ? problem.queryHeads : problem.kvHeads },
    rows: { start: 0, count: problem.queryLength },
    keys: { start: 0, count: problem.keyLength },
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
): { readonly chunks: readonly Chunk[] } | { readonly overflow: Overflow } {
  const extent = wholeProblem(problem, kernel.heads);
  if (kernel.bindWhole) return { chunks: [extent] };
  return planChunks(extent, limit, bindingBytes(kernel, limit), kernel.steps);
}

/** Bindings (buffer sub-ranges) and uniforms (bases, ends, head count, shifted offsets) of one chunk. */
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
    key_base: chunk.keys.start,
    key_end: chunk.keys.start + chunk.keys.count,
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

/** The chunks of a kernel, or an InvalidArgumentError naming the binding that does not fit even its smallest chunk. */
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

/** Why flash refuses for size (also in checkFlash's rejection). */
export const OVERFLOW_REASON = `maxStorageBufferBindingSize; flash splits its dispatches over batch entries, heads, query rows and keys, down to one row × one key split in the forward and one row × ${KEY_STEP} keys in the backward, and this binding does not fit even then`;

/** "k binding size N B, need ≤ M B (...)" */
export function overflowMessage(overflow: Overflow, limit: number): string {
  return `${overflow.name} binding size ${overflow.bytes} B, need ≤ ${limit} B (${OVERFLOW_REASON})`;
}

/**
 * Records one kernel over its chunks: each dispatch binds the chunk's sub-ranges, `whole` (buffers bound
 * entirely) and `extra` (bindings that follow the chunk, such as the logsumexp, with their copies around the
 * dispatch), with the uniforms `uniforms(chunk's bases and offsets)` and `workgroups(chunk)`.
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
  extra: readonly ChunkBinding[] = [],
): void {
  for (const chunk of chunks) {
    const args = chunkArguments(problem, kernel, chunk, buffers);
    const bound = extra.map((binding) => binding.bind(chunk));
    const values = Object.assign({}, args.uniforms, ...bound.map((b) => b.uniforms)) as ChunkUniforms;
    recorder.dispatch(source, [...whole, ...args.bindings, ...bound.flatMap((b) => b.bindings)], uniforms(values), workgroups(chunk));
    for (const binding of extra) binding.after(chunk);
  }
}
