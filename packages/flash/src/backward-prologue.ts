import { uniformLayout, type AttentionLayout, type AttentionProblem, type KernelSource } from '@webattn/tensor';
import { layoutSpan } from './check-flash';
import { rowsOfEights } from './chunked-rows';
import { paddedKeyRows, type KeyValueCopies } from './padded-key-values';
import type { BoundBuffer, KernelRecorder } from './recorder';
import source from './backward-prologue.wgsl?raw';

/**
 * The matrix backward's prologue (backward-prologue.wgsl): the padded copies of q, k, v and dO that its kernels load
 * matrices from (padded-key-values.ts) and delta = rowsum(dO ∘ O), in one dispatch instead of five. At the seed shape
 * every dispatch costs ~6–10 µs of GPU time whatever it moves (bench notes, entry 37), about a tenth of the causal
 * backward. It runs where every source is in rows of eights, the problem is not packed varlen and each binding
 * fits (`backwardPrologueUnavailable`); elsewhere the backward records the copies and the delta kernel one by one.
 */

/** The copies in the order the kernel takes them (its `copies` uniform array: dO first, see the kernel). */
const COPIES = ['gradOut', 'q', 'k', 'v'] as const;
type CopyName = (typeof COPIES)[number];

/** One copy's fields, in the order of the kernel's `Copy` struct. */
const COPY_FIELDS = ['offset', 'batch_stride', 'head_stride', 'row_stride', 'heads', 'rows', 'dims', 'padded_rows', 'padded_dims', 'destination', 'first_block', 'zero_nan'] as const;
type CopyField = (typeof COPY_FIELDS)[number];

/** The kernel's `Params`: the four `Copy` structs laid out one after another, then the shared fields. */
const PROLOGUE_UNIFORMS = uniformLayout([
  ...COPIES.flatMap((copy) => COPY_FIELDS.map((field) => [`${copy}_${field}`, 'u32'] as const)),
  ...(['batches', 'total_blocks', 'o_offset', 'o_batch', 'o_head', 'o_row', 'query_length', 'unused'] as const).map((name) => [name, 'u32'] as const),
]);

/** Chunks of 8 f16 a workgroup copies per block; at most this many workgroups (each strides over the blocks). */
const BLOCK_CHUNKS = 1024;
const MAX_WORKGROUPS = 65535;
/** Where each copy starts in the shared buffer: a multiple of every device's storage offset alignment. */
const COPY_ALIGNMENT = 256;

const prologueKernel: KernelSource = { name: 'flash-backward-prologue', variant: '', code: () => source };

/** The problem's tensors the prologue reads, with the layouts they have. */
export interface PrologueSources {
  readonly q: GPUBuffer;
  readonly k: GPUBuffer;
  readonly v: GPUBuffer;
  readonly out: GPUBuffer;
  readonly gradOut: GPUBuffer;
  readonly gradOutLayout: AttentionLayout;
}

/** The padded shapes: query rows a head (the dK/dV kernel's tiles), compiled head dims. */
export interface PrologueShape {
  readonly queryRows: number;
  readonly headDimQk: number;
  readonly headDimV: number;
}

/** A copy as the kernel writes it: its source, rows and dims. */
interface CopyPlan {
  readonly buffer: GPUBuffer;
  readonly layout: AttentionLayout;
  readonly heads: number;
  readonly rows: number;
  readonly dims: number;
  readonly paddedRows: number;
  readonly paddedDims: number;
  readonly zeroNan: boolean;
}

function copyPlans(problem: AttentionProblem, sources: PrologueSources, shape: PrologueShape): Record<CopyName, CopyPlan> {
  const { layout, queryHeads, kvHeads, queryLength, keyLength, headDimQk, headDimV } = problem;
  const keyRows = paddedKeyRows(keyLength, 64);
  const query = { heads: queryHeads, rows: queryLength, paddedRows: shape.queryRows };
  const keys = { heads: kvHeads, rows: keyLength, paddedRows: keyRows };
  return {
    q: { ...query, buffer: sources.q, layout: layout.q, dims: headDimQk, paddedDims: shape.headDimQk, zeroNan: true },
    k: { ...keys, buffer: sources.k, layout: layout.k, dims: headDimQk, paddedDims: shape.headDimQk, zeroNan: true },
    v: { ...keys, buffer: sources.v, layout: layout.v, dims: headDimV, paddedDims: shape.headDimV, zeroNan: false },
    gradOut: { ...query, buffer: sources.gradOut, layout: sources.gradOutLayout, dims: headDimV, paddedDims: shape.headDimV, zeroNan: false },
  };
}

const copyBytes = (problem: AttentionProblem, plan: CopyPlan) => problem.batch * plan.heads * plan.paddedRows * plan.paddedDims * 2;
const aligned = (bytes: number) => Math.ceil(bytes / COPY_ALIGNMENT) * COPY_ALIGNMENT;

/**
 * Why the prologue cannot serve `problem`, or null: packed varlen (the copies unpack its sequences: the separate
 * copy kernel does that), a source not in rows of eights, or a binding beyond `limit` (a source's span, O's, delta,
 * or the copies' shared buffer).
 */
export function backwardPrologueUnavailable(problem: AttentionProblem, sources: PrologueSources, shape: PrologueShape, limit: number): string | null {
  if (problem.varlen) return 'packed varlen sequences are unpacked by the separate copies';
  const plans = copyPlans(problem, sources, shape);
  const rows = [...COPIES.map((name) => [name, plans[name].layout, plans[name].dims] as const), ['out', problem.layout.out, problem.headDimV] as const];
  const scattered = rows.find(([, layout, dims]) => !rowsOfEights(layout, dims));
  if (scattered) return `${scattered[0]} is not in rows of eights (contiguous dims, offset and strides multiples of 8 elements)`;
  const padded = [shape.headDimQk, shape.headDimV].find((dims) => dims < 8 || (dims & (dims - 1)) !== 0);
  if (padded !== undefined) return `padded head dim ${padded} is not a power of two ≥ 8`;
  const spans = [
    ...COPIES.map((name) => layoutSpan(plans[name].layout, problem.batch, plans[name].heads, plans[name].rows, plans[name].dims) * 2),
    layoutSpan(problem.layout.out, problem.batch, problem.queryHeads, problem.queryLength, problem.headDimV) * 2,
    problem.batch * problem.queryHeads * problem.queryLength * 4,
    COPIES.reduce((bytes, name) => bytes + aligned(copyBytes(problem, plans[name])), 0),
  ];
  const widest = Math.max(...spans);
  return widest > limit ? `a binding of ${widest} B beyond the ${limit} B limit` : null;
}

/** What the prologue wrote: the four copies (ranges of one buffer) and their layouts. */
export interface PrologueCopies {
  readonly keyValues: KeyValueCopies;
  readonly q: { readonly buffer: BoundBuffer; readonly layout: AttentionLayout };
  readonly gradOut: { readonly buffer: BoundBuffer; readonly layout: AttentionLayout };
}

/**
 * Records the prologue (no checks: `backwardPrologueUnavailable` is null): the copies into one temporary buffer and
 * delta ([B, Hq, L] f32) into `delta`.
 */
export function recordBackwardPrologue(
  recorder: KernelRecorder,
  problem: AttentionProblem,
  sources: PrologueSources,
  shape: PrologueShape,
  delta: GPUBuffer,
): PrologueCopies {
  const plans = copyPlans(problem, sources, shape);
  const values: Record<string, number> = {};
  const regions = {} as Record<CopyName, { readonly offset: number; readonly size: number; readonly layout: AttentionLayout }>;
  let bytes = 0;
  let blocks = 0;
  for (const name of COPIES) {
    const plan = plans[name];
    const size = copyBytes(problem, plan);
    const fields: Record<CopyField, number> = {
      offset: plan.layout.offset,
      batch_stride: plan.layout.batch,
      head_stride: plan.layout.head,
      row_stride: plan.layout.sequence,
      heads: plan.heads,
      rows: plan.rows,
      dims: plan.dims,
      padded_rows: plan.paddedRows,
      padded_dims: plan.paddedDims,
      destination: bytes / 16,
      first_block: blocks,
      zero_nan: plan.zeroNan ? 1 : 0,
    };
    for (const field of COPY_FIELDS) values[`${name}_${field}`] = fields[field];
    const layout = { batch: plan.heads * plan.paddedRows * plan.paddedDims, head: plan.paddedRows * plan.paddedDims, sequence: plan.paddedDims, dim: 1, offset: 0 };
    regions[name] = { offset: bytes, size: Math.max(16, size), layout };
    bytes += aligned(size);
    blocks += Math.ceil(size / 16 / BLOCK_CHUNKS);
  }
  const buffer = recorder.scratch(Math.max(16, bytes), GPUBufferUsage.STORAGE, 'flash backward padded copies');
  const out = problem.layout.out;
  const uniforms = PROLOGUE_UNIFORMS.pack({
    ...values,
    batches: problem.batch,
    total_blocks: blocks,
    o_offset: out.offset,
    o_batch: out.batch,
    o_head: out.head,
    o_row: out.sequence,
    query_length: problem.queryLength,
    unused: 0,
  } as Parameters<typeof PROLOGUE_UNIFORMS.pack>[0]);
  recorder.dispatch(
    prologueKernel,
    [
      [1, sources.q],
      [2, sources.k],
      [3, sources.v],
      [4, sources.gradOut],
      [5, sources.out],
      [6, buffer],
      [7, delta],
    ],
    uniforms,
    [Math.max(1, Math.min(blocks, MAX_WORKGROUPS)), 1, 1],
  );
  const copyOf = (name: CopyName) => ({ buffer: { buffer, offset: regions[name].offset, size: regions[name].size }, layout: regions[name].layout });
  const k = copyOf('k');
  const v = copyOf('v');
  return {
    keyValues: { k: k.buffer, v: v.buffer, problem: { ...problem, layout: { ...problem.layout, k: k.layout, v: v.layout } } },
    q: copyOf('q'),
    gradOut: copyOf('gradOut'),
  };
}
