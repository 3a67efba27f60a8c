/**
 * How a chunked dispatch binds the per-row f32 buffers: the logsumexp ([B, Hq, L], followed by each row's
 * rounding residual when `residual`: 2·B·Hq·L floats) and the backward's delta ([B, Hq, L]). Kernels index them
 * by the global row (b·Hq + h)·L + i minus `lse_base` / `delta_base`, and find a row's residual at
 * lse_count + row − lse_base in the logsumexp binding. Modes:
 * - 'whole': the buffer fits one binding: bound whole, base 0, lse_count = B·Hq·L (as unsplit runs);
 * - 'window' (no residual): the aligned sub-range holding the chunk's rows, base = its first element;
 * - 'staged' (residual, too large for one binding): a row's value and residual lie B·Hq·L floats apart, so no
 *   window holds both for long problems; the chunk's rows go through a scratch [their values, their residuals]
 *   (base = the chunk's first row, lse_count = its row count), copied from the logsumexp before a kernel that
 *   reads them and back after one that writes them (copy-floats.ts).
 * A chunk's rows are one contiguous range: chunks split batch entries only over all heads and rows, heads only
 * over all rows (binding-chunks.ts).
 */
import type { AttentionProblem } from '@webattn/tensor';
import { bindingWindow, largest, stridedRange, windowBytes, type Chunk, type IndexRange } from './binding-chunks';
import { recordCopyFloats } from './copy-floats';
import type { BoundBuffer, KernelRecorder } from './recorder';

const ALIGNMENT = 256;

/** Which heads a chunk's `heads` are: query heads, or kv heads (dK/dV over keys: all their query heads). */
export type ChunkHeads = 'query' | 'kv';

export type RowStatsMode = 'whole' | 'window' | 'staged';

/** Rows of the [B, Hq, L] row space. */
export const rowCount = (problem: AttentionProblem) => problem.batch * problem.queryHeads * problem.queryLength;

export function logsumexpMode(problem: AttentionProblem, residual: boolean, limit: number): RowStatsMode {
  if (rowCount(problem) * 4 * (residual ? 2 : 1) <= limit) return 'whole';
  return residual ? 'staged' : 'window';
}

export function deltaMode(problem: AttentionProblem, limit: number): RowStatsMode {
  return rowCount(problem) * 4 <= limit ? 'whole' : 'window';
}

/** The rows [start, start + count) of the [B, Hq, L] row space a chunk covers (all keys' rows are the same). */
export function chunkRows(problem: AttentionProblem, heads: ChunkHeads, chunk: Chunk): IndexRange {
  const group = problem.queryHeads / problem.kvHeads;
  const headRange = heads === 'query' ? chunk.heads : { start: chunk.heads.start * group, count: chunk.heads.count * group };
  const range = stridedRange(0, [
    { stride: problem.queryHeads * problem.queryLength, ...chunk.batch },
    { stride: problem.queryLength, ...headRange },
    { stride: 1, ...chunk.rows },
  ]);
  return { start: range.first, count: range.end - range.first };
}

/** Bytes the logsumexp binding of these rows takes (for planning). */
export function logsumexpBindingBytes(problem: AttentionProblem, residual: boolean, limit: number, rows: IndexRange): number {
  const mode = logsumexpMode(problem, residual, limit);
  if (mode === 'whole') return rowCount(problem) * 4 * (residual ? 2 : 1);
  if (mode === 'staged') return rows.count * 2 * 4;
  return windowBytes({ first: rows.start, end: rows.start + rows.count }, 4, ALIGNMENT);
}

export function deltaBindingBytes(problem: AttentionProblem, limit: number, rows: IndexRange): number {
  return deltaMode(problem, limit) === 'whole' ? rowCount(problem) * 4 : windowBytes({ first: rows.start, end: rows.start + rows.count }, 4, ALIGNMENT);
}

/** A binding whose range and uniforms follow the chunk, with copies recorded around its dispatch. */
export interface ChunkBinding {
  /** The chunk's bindings and uniforms; records what must precede its dispatch. */
  bind(chunk: Chunk): { bindings: [number, BoundBuffer][]; uniforms: Record<string, number> };
  /** Records what must follow the chunk's dispatch. */
  after(chunk: Chunk): void;
}

/**
 * The logsumexp binding (number `binding`) of a kernel dispatched over `chunks`: read (backward) or written
 * (forward, split-KV combine); see the header for the modes.
 */
export function logsumexpBinding(
  recorder: KernelRecorder,
  problem: AttentionProblem,
  heads: ChunkHeads,
  run: { buffer: GPUBuffer; residual: boolean; limit: number; binding: number; access: 'read' | 'write'; chunks: readonly Chunk[] },
): ChunkBinding {
  const { buffer, residual, binding } = run;
  const total = rowCount(problem);
  const mode = logsumexpMode(problem, residual, run.limit);
  if (mode === 'whole') {
    return { bind: () => ({ bindings: [[binding, buffer]], uniforms: { lse_base: 0, lse_count: total } }), after: () => undefined };
  }
  if (mode === 'window') {
    return {
      bind(chunk) {
        const rows = chunkRows(problem, heads, chunk);
        const window = bindingWindow({ first: rows.start, end: rows.start + rows.count }, 4, ALIGNMENT, buffer.size);
        return { bindings: [[binding, { buffer, offset: window.offset, size: window.size }]], uniforms: { lse_base: window.shift, lse_count: total } };
      },
      after: () => undefined,
    };
  }
  const most = Math.max(1, largest(run.chunks.map((chunk) => chunkRows(problem, heads, chunk).count)));
  const scratch = recorder.scratch(most * 2 * 4, GPUBufferUsage.STORAGE, 'flash logsumexp rows');
  // Values at [0, count), residuals at [count, 2·count) of the scratch; at [start, …) and [total + start, …) of the buffer.
  const halves = (rows: IndexRange) => [
    { stored: { buffer, index: rows.start }, staged: { buffer: scratch, index: 0 } },
    { stored: { buffer, index: total + rows.start }, staged: { buffer: scratch, index: rows.count } },
  ];
  return {
    bind(chunk) {
      const rows = chunkRows(problem, heads, chunk);
      if (run.access === 'read') for (const half of halves(rows)) recordCopyFloats(recorder, half.stored, half.staged, rows.count);
      return { bindings: [[binding, { buffer: scratch, offset: 0, size: Math.max(4, rows.count * 2 * 4) }]], uniforms: { lse_base: rows.start, lse_count: rows.count } };
    },
    after(chunk) {
      const rows = chunkRows(problem, heads, chunk);
      if (run.access === 'write') for (const half of halves(rows)) recordCopyFloats(recorder, half.staged, half.stored, rows.count);
    },
  };
}

/** The backward's delta (a temporary [B, Hq, L] f32 buffer): whole, or the window of the chunk's rows. */
export function deltaBinding(problem: AttentionProblem, heads: ChunkHeads, run: { buffer: GPUBuffer; limit: number; binding: number }): ChunkBinding {
  const { buffer, binding } = run;
  const whole = deltaMode(problem, run.limit) === 'whole';
  return {
    bind(chunk) {
      if (whole) return { bindings: [[binding, buffer]], uniforms: { delta_base: 0 } };
      const rows = chunkRows(problem, heads, chunk);
      const window = bindingWindow({ first: rows.start, end: rows.start + rows.count }, 4, ALIGNMENT, buffer.size);
      return { bindings: [[binding, { buffer, offset: window.offset, size: window.size }]], uniforms: { delta_base: window.shift } };
    },
    after: () => undefined,
  };
}
