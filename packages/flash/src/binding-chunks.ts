/**
 * Splitting a flash dispatch so that no storage binding exceeds `maxStorageBufferBindingSize` (128 MiB on
 * lavapipe and in browsers): pure planning, no GPU calls.
 *
 * A chunk is a box of batch entries × heads × rows. Each tensor a kernel reads or writes touches one element
 * range for a chunk (its strides are non-negative); the chunk binds only the buffer sub-range holding it (offset
 * aligned down to `minStorageBufferOffsetAlignment`), and the element distance from the binding's start to the
 * buffer's start is subtracted from the tensor's offset uniform. That offset may go "negative": WGSL u32
 * arithmetic wraps, so offset − shift + b·stride + ... still lands on the right element of the binding. Kernels
 * keep global batch, head and row indices (chunk bases in uniforms), so masks, dropout bits, GQA and logsumexp
 * indexing do not change with chunking — and neither do the results, bit for bit.
 */

export interface IndexRange {
  readonly start: number;
  readonly count: number;
}

export interface Chunk {
  readonly batch: IndexRange;
  readonly heads: IndexRange;
  readonly rows: IndexRange;
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
 * The binding window of an element range: offset aligned down to `alignment` bytes, size rounded up to 4 bytes
 * (at most to the buffer's end when `bufferSize` is given).
 */
export function bindingWindow(range: ElementRange, bytes: number, alignment: number, bufferSize = Number.POSITIVE_INFINITY): BindingWindow {
  const offset = Math.floor((range.first * bytes) / alignment) * alignment;
  const end = Math.max(offset + 4, Math.ceil((range.end * bytes) / 4) * 4);
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

function chunksOf(extent: Chunk, batches: number, heads: number, rows: number): Chunk[] {
  const chunks: Chunk[] = [];
  const ranges = (range: IndexRange, step: number) => {
    const result: IndexRange[] = [];
    for (let start = range.start; start < range.start + range.count; start += step) {
      result.push({ start, count: Math.min(step, range.start + range.count - start) });
    }
    return result;
  };
  for (const batch of ranges(extent.batch, batches)) {
    for (const head of ranges(extent.heads, heads)) {
      for (const row of ranges(extent.rows, rows)) chunks.push({ batch, heads: head, rows: row });
    }
  }
  return chunks;
}

/**
 * Chunks covering `extent` whose bindings all fit `limit` bytes: the whole problem if it fits, else fewer batch
 * entries per chunk, then fewer heads, then fewer rows (in multiples of `rowStep`, so that chunks start on the
 * kernels' row tiles; rowStep ≥ the row count forbids splitting rows). Halves each count until it fits.
 * Returns the largest overflow of the smallest chunk when even that does not fit.
 */
export function planChunks(
  extent: Chunk,
  rowStep: number,
  limit: number,
  bindings: ChunkBindings,
): { readonly chunks: readonly Chunk[] } | { readonly overflow: Overflow } {
  const fits = (chunks: readonly Chunk[]) => chunks.every((chunk) => bindings(chunk).every((binding) => binding.bytes <= limit));
  const halvings = (count: number) => {
    const counts: number[] = [];
    for (let parts = 1; ; parts *= 2) {
      const size = Math.ceil(count / parts);
      if (counts[counts.length - 1] !== size) counts.push(size);
      if (size <= 1) return counts;
    }
  };
  const { batch, heads, rows } = extent;
  for (const batches of halvings(batch.count)) {
    const chunks = chunksOf(extent, batches, heads.count, rows.count);
    if (fits(chunks)) return { chunks };
  }
  for (const headCount of halvings(heads.count).slice(1)) {
    const chunks = chunksOf(extent, 1, headCount, rows.count);
    if (fits(chunks)) return { chunks };
  }
  let smallest = chunksOf(extent, 1, 1, rows.count);
  if (rowStep < rows.count) {
    const tiles = Math.ceil(rows.count / rowStep);
    for (const tileCount of halvings(tiles).slice(1)) {
      smallest = chunksOf(extent, 1, 1, tileCount * rowStep);
      if (fits(smallest)) return { chunks: smallest };
    }
  }
  let overflow: Overflow = { name: '', bytes: 0 };
  for (const chunk of smallest) {
    for (const binding of bindings(chunk)) {
      if (binding.bytes > limit && binding.bytes > overflow.bytes) overflow = binding;
    }
  }
  return { overflow };
}
