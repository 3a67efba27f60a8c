/**
 * Splitting a flash dispatch so that no storage binding exceeds `maxStorageBufferBindingSize` (128 MiB on
 * lavapipe and in browsers): pure planning, no GPU calls.
 *
 * A chunk is a box of batch entries × heads × query rows × keys. Each tensor a kernel reads or writes touches one
 * element range for a chunk (its strides are non-negative); the chunk binds only the buffer sub-range holding it
 * (offset aligned down to `minStorageBufferOffsetAlignment`), and the element distance from the binding's start to
 * the buffer's start is subtracted from the tensor's offset uniform. That offset may go "negative": WGSL u32
 * arithmetic wraps, so offset − shift + b·stride + ... still lands on the right element of the binding. Kernels
 * keep global batch, head, row and key indices (chunk bases in uniforms), so masks, dropout bits, GQA and
 * logsumexp indexing do not change with chunking. Chunks of batch entries, heads and rows give the unsplit
 * results bit for bit; key chunks do too where a kernel continues its sums across them in the unsplit order (dQ,
 * dK/dV), while the forward over key chunks merges per-split partials (split-KV).
 */

export interface IndexRange {
  readonly start: number;
  readonly count: number;
}

/** A box of batch entries × heads × query rows × keys (all keys unless a kernel splits them). */
export interface Chunk {
  readonly batch: IndexRange;
  readonly heads: IndexRange;
  readonly rows: IndexRange;
  readonly keys: IndexRange;
}

/** Elements [first, end) of a buffer that a strided tensor touches (end = first when it touches none). */
export interface ElementRange {
  readonly first: number;
  readonly end: number;
}

/** One axis of a strided tensor: its element stride and the index range used. */
export interface AxisRange {
  readonly stride: number;
  readonly start: number;
  readonly count: number;
}

/** The elements a tensor with non-negative strides touches over the given index ranges. */
export function stridedRange(offset: number, axes: readonly AxisRange[]): ElementRange {
  if (axes.some((axis) => axis.count <= 0)) return { first: offset, end: offset };
  let first = offset;
  let last = offset;
  for (const axis of axes) {
    first += axis.start * axis.stride;
    last += (axis.start + axis.count - 1) * axis.stride;
  }
  return { first, end: last + 1 };
}

/** Where a buffer sub-range binds: byte offset (aligned), byte size (whole words) and the element shift. */
export interface BindingWindow {
  readonly offset: number;
  readonly size: number;
  /** Elements between the buffer's start and the binding's start: subtract from the tensor's offset uniform. */
  readonly shift: number;
}

/**
 * The binding window of an element range: offset aligned down to `alignment` bytes, size rounded up to 4 bytes and
 * at least 16 (a kernel may bind the tensor as array<vec4<...>>, whose minimum binding size is 16, even where a
 * chunk reads none of it), at most to the buffer's end when `bufferSize` is given.
 */
export function bindingWindow(range: ElementRange, bytes: number, alignment: number, bufferSize = Number.POSITIVE_INFINITY): BindingWindow {
  const offset = Math.floor((range.first * bytes) / alignment) * alignment;
  const end = Math.max(offset + 16, Math.ceil((range.end * bytes) / 4) * 4);
  return { offset, size: Math.min(end, bufferSize) - offset, shift: offset / bytes };
}

/** An offset uniform after shifting its binding: wraps below 0 like the kernels' u32 arithmetic. */
export function shiftedOffset(offset: number, shift: number): number {
  return (offset - shift) >>> 0;
}

/** A tensor's binding size for a chunk that exceeds the limit (for rejection messages). */
export interface Overflow {
  readonly name: string;
  readonly bytes: number;
}

/** The bytes a chunk binds per tensor name, so that planChunks can compare them with the limit. */
export type ChunkBindings = (chunk: Chunk) => readonly { readonly name: string; readonly bytes: number }[];

/** Bytes the binding of an element range takes (its aligned window). */
export function windowBytes(range: ElementRange, bytes: number, alignment: number): number {
  return bindingWindow(range, bytes, alignment).size;
}

/** Consecutive ranges of at most `step` indices covering `range` (an empty range: itself, so that e.g. a forward without keys still runs). */
function rangesOf(range: IndexRange, step: number): IndexRange[] {
  if (range.count === 0) return [range];
  const result: IndexRange[] = [];
  for (let start = range.start; start < range.start + range.count; start += step) {
    result.push({ start, count: Math.min(step, range.start + range.count - start) });
  }
  return result;
}

/** The chunks of `extent` with at most the given counts per axis, keys innermost (then rows, heads, batch). */
function* chunksOf(extent: Chunk, batches: number, heads: number, rows: number, keys: number): Generator<Chunk> {
  for (const batch of rangesOf(extent.batch, batches)) {
    for (const head of rangesOf(extent.heads, heads)) {
      for (const row of rangesOf(extent.rows, rows)) {
        for (const key of rangesOf(extent.keys, keys)) yield { batch, heads: head, rows: row, keys: key };
      }
    }
  }
}

/** The largest of `values` (0 for none), without spreading them into arguments. */
export function largest(values: Iterable<number>): number {
  let most = 0;
  for (const value of values) most = Math.max(most, value);
  return most;
}

/**
 * Consecutive chunks of the same batch entries, heads and rows: planChunks puts keys innermost, so each group is
 * one box of rows over its key chunks, in key order.
 */
export function rowGroups(chunks: readonly Chunk[]): Chunk[][] {
  const groups: Chunk[][] = [];
  const box = (c: Chunk) => [c.batch.start, c.batch.count, c.heads.start, c.heads.count, c.rows.start, c.rows.count].join();
  for (const chunk of chunks) {
    const last = groups[groups.length - 1];
    if (last && box(last[0]!) === box(chunk)) last.push(chunk);
    else groups.push([chunk]);
  }
  return groups;
}

/** Sizes ⌈count / 2^n⌉ (distinct, down to 1). */
function halvings(count: number): number[] {
  const counts: number[] = [];
  for (let parts = 1; ; parts *= 2) {
    const size = Math.ceil(count / parts);
    if (counts[counts.length - 1] !== size) counts.push(size);
    if (size <= 1) return counts;
  }
}

/** Chunk sizes along an axis split in multiples of `step` (step ≥ count or 0: not split): the whole axis first. */
function stepSizes(count: number, step: number): number[] {
  if (step <= 0 || step >= count) return [count];
  return halvings(Math.ceil(count / step)).map((tiles) => Math.min(count, tiles * step));
}

/** How planChunks may split rows and keys, and what else a chunk must satisfy. */
export interface ChunkSteps {
  /** Rows split in multiples of this (kernels' row tiles start there); 0 or ≥ the row count: not split. */
  readonly rows: number;
  /**
   * When no chunk of `rows`-multiples fits, the row step halves down to this (`rows` / 2ⁿ; the kernels must accept
   * chunks starting and ending at its multiples, e.g. inside a row tile). Default: `rows` (no halving).
   */
  readonly smallestRows?: number;
  /** Keys split in multiples of this; 0 or ≥ the key count: not split. */
  readonly keys: number;
  /** Besides the bindings fitting, e.g. a dispatch grid's size (default: any chunk). */
  readonly accept?: (chunk: Chunk) => boolean;
}

/** The row steps planChunks tries: `rows`, then its halves down to `smallestRows`. */
export function halvedRowSteps(steps: ChunkSteps): number[] {
  const result = [steps.rows];
  const smallest = steps.smallestRows ?? steps.rows;
  for (let step = steps.rows; step > smallest && step % 2 === 0; ) {
    step /= 2;
    result.push(step);
  }
  if (result[result.length - 1] !== smallest) throw new Error(`flash: smallest row step ${smallest} is not ${steps.rows} / 2^n`);
  return result;
}

/** At most this many chunks are scanned for the overflow of a plan that does not fit (for the message only). */
const OVERFLOW_SCAN = 4096;

/**
 * Chunks covering `extent` whose bindings all fit `limit` bytes: the whole problem if it fits, else fewer batch
 * entries per chunk, then fewer heads, then fewer rows and/or keys (in multiples of their steps, so that chunks
 * start on the kernels' tiles; the combination with the fewest chunks, fewer key splits on ties; rows in multiples
 * of a halved row step only when none in multiples of the full one fits, see `smallestRows`). Halves each count
 * until it fits. Chunks come batch-major, keys innermost. Returns the largest overflow of the smallest chunks when
 * even those do not fit.
 */
export function planChunks(
  extent: Chunk,
  limit: number,
  bindings: ChunkBindings,
  steps: ChunkSteps,
): { readonly chunks: readonly Chunk[] } | { readonly overflow: Overflow } {
  const fitsChunk = (chunk: Chunk) => (steps.accept?.(chunk) ?? true) && bindings(chunk).every((binding) => binding.bytes <= limit);
  // Chunks are generated lazily: a plan that does not fit usually fails on its first chunk.
  const plan = (batches: number, headCount: number, rowCount: number, keyCount: number) => {
    for (const chunk of chunksOf(extent, batches, headCount, rowCount, keyCount)) if (!fitsChunk(chunk)) return null;
    return { chunks: [...chunksOf(extent, batches, headCount, rowCount, keyCount)] };
  };
  const { batch, heads, rows, keys } = extent;
  for (const batches of halvings(batch.count)) {
    const fitting = plan(batches, heads.count, rows.count, keys.count);
    if (fitting) return fitting;
  }
  for (const headCount of halvings(heads.count).slice(1)) {
    const fitting = plan(1, headCount, rows.count, keys.count);
    if (fitting) return fitting;
  }
  const parts = (count: number, size: number) => Math.ceil(count / size);
  const keySizes = stepSizes(keys.count, steps.keys);
  // Per row step (the full one first), its combinations by fewest chunks; each combination tried once.
  const tried = new Set([`${rows.count},${keys.count}`]);
  const steppedRows = halvedRowSteps(steps).map((step) => stepSizes(rows.count, step));
  for (const rowSizes of steppedRows) {
    const candidates = rowSizes
      .flatMap((rowCount) => keySizes.map((keyCount) => ({ rowCount, keyCount })))
      .map((c) => ({ ...c, chunks: parts(rows.count, c.rowCount) * parts(keys.count, c.keyCount), keyParts: parts(keys.count, c.keyCount) }))
      .sort((a, b) => a.chunks - b.chunks || a.keyParts - b.keyParts);
    for (const { rowCount, keyCount } of candidates) {
      if (tried.has(`${rowCount},${keyCount}`)) continue;
      tried.add(`${rowCount},${keyCount}`);
      const fitting = plan(1, 1, rowCount, keyCount);
      if (fitting) return fitting;
    }
  }
  const smallestRows = steppedRows[steppedRows.length - 1]!;
  const smallest = { rowCount: smallestRows[smallestRows.length - 1]!, keyCount: keySizes[keySizes.length - 1]! };
  let overflow: Overflow = { name: '', bytes: 0 };
  let scanned = 0;
  for (const chunk of chunksOf(extent, 1, 1, smallest.rowCount, smallest.keyCount)) {
    for (const binding of bindings(chunk)) {
      if (binding.bytes > limit && binding.bytes > overflow.bytes) overflow = binding;
    }
    if (++scanned >= OVERFLOW_SCAN) break;
  }
  return { overflow };
}
