import { InvalidArgumentError, bytesPerElement, composeWgsl, uniformLayout, type AttentionLayout, type AttentionProblem, type KernelSource } from '@webattn/tensor';
import { layoutSpan, storageBuffersNeeded } from './check-flash';
import type { BoundBuffer, KernelRecorder } from './recorder';
import { headDimBucket, type FlashCaps } from './flash-tiles';
import { rowsOfEights } from './chunked-rows';
import source from './padded-key-values.wgsl?raw';

/**
 * The subgroup-matrix forward's direct form (flash-forward-matrix.wgsl with DIRECT_KV) loads its key and value
 * matrices straight from storage instead of staging them in workgroup memory. A matrix load must stay inside its
 * binding (robustness clamps or drops one that reaches past the end as a whole, misplacing the rows inside it) and
 * must not carry a NaN value into the products (P · V multiplies a masked key's NaN by its zero weight). So the
 * forward first copies k and v into contiguous buffers [B, Hkv, rows, dims] whose heads are padded with zero rows
 * to whole key tiles and whose dims are zero-padded to the compiled head dim, with v's NaN and infinite values copied as 0
 * and recorded per row and dim (padded-key-values.wgsl); the kernel puts them back where a row attends such a key.
 * The copies cost one read and write of k and v (small beside the forward: it reads them once per query tile).
 * Packed varlen sources are unpacked: sequence b's keys become batch entry b of the copy (from row 0 of each head),
 * so a sequence's last tile meets zero rows, not the next sequence's keys.
 * The forward reads k where it is when it can (`keysReadInPlace`: rows dense at the compiled head dim, every tile's
 * load inside k's binding): the rows a head's last tile reads past its keys (the next head's, or the buffer's slack)
 * only give scores to keys outside every row's bounds, which the kernel sets to −∞ whatever they are. v is copied
 * always, for the 0 · NaN above.
 */
const COPY_UNIFORMS = uniformLayout([
  ['offset', 'u32'],
  ['batch_stride', 'u32'],
  ['head_stride', 'u32'],
  ['key_stride', 'u32'],
  ['dim_stride', 'u32'],
  ['batches', 'u32'],
  ['heads', 'u32'],
  ['keys', 'u32'],
  ['padded_rows', 'u32'],
  ['dims', 'u32'],
  ['padded_dims', 'u32'],
]);

/** Chunks of 8 dims a workgroup copies per step, and rows per group of the NaN record (padded-key-values.wgsl). */
const BLOCK_CHUNKS = 1024;
const GROUP_ROWS = 32;
/** At most this many workgroups (each strides over the row groups). */
const MAX_WORKGROUPS = 65535;

/** 'record': NaN and ±∞ copied as 0 and recorded; 'zero-nan': NaN copied as 0; 'plain': every value as it is. */
export type PaddedCopyMode = 'plain' | 'zero-nan' | 'record';

const copyKernel = (mode: PaddedCopyMode, varlen: boolean, vec8: boolean): KernelSource => ({
  name: 'padded-key-values',
  variant: [mode, ...(varlen ? ['varlen'] : []), ...(vec8 ? ['vec8'] : [])].join(' '),
  code: () =>
    composeWgsl([source], {
      flags: { SCAN_NAN: mode === 'record', ZERO_NAN: mode === 'zero-nan', ZERO_OR_SCAN: mode !== 'plain', VARLEN: varlen, VEC8: vec8 },
      replacements: { UNIFORMS: COPY_UNIFORMS.wgslStruct('Params') },
    }),
});

/** Padded copies of k and v as the matrix kernels bind them (whole buffers or ranges), and the problem with their layouts. */
export interface KeyValueCopies {
  readonly k: BoundBuffer;
  readonly v: BoundBuffer;
  /** `problem` with v's layout in its padded copy, and k's in its copy (or k's own, read in place). */
  readonly problem: AttentionProblem;
}

/** k and v as the direct form reads them, and the problem with their layouts. */
export interface PaddedKeyValues extends KeyValueCopies {
  readonly k: GPUBuffer;
  readonly v: GPUBuffer;
  /** v's NaN record (see the header). */
  readonly nanFlags: GPUBuffer;
}

/** Rows per head of the padded copies: the keys, rounded up to whole tiles of `blockKeys`. */
export const paddedKeyRows = (keyLength: number, blockKeys: number) => Math.ceil(keyLength / blockKeys) * blockKeys;

/** Words of the NaN record for `rowCount` rows of `dims` (padded) dims. */
function nanFlagWords(rowCount: number, dims: number): number {
  return Math.ceil(rowCount / GROUP_ROWS) * (1 + 2 * GROUP_ROWS * Math.ceil(dims / 32));
}

/**
 * Why unpacking a packed varlen source costs too much memory, or null (not varlen, or it does not): the copies pad
 * every sequence to the longest, in whole tiles of 64 rows, and are refused where that is more than twice the rows
 * the packed buffer holds plus a tile per sequence (a few long sequences among many short ones; the forward then
 * stages k and v, and the backward runs the tiled family). `layout.sequence` elements of f16 make one packed row.
 */
export function unpackedVarlenExcess(problem: AttentionProblem, layout: AttentionLayout, length: number, buffer: GPUBuffer): string | null {
  if (!problem.varlen) return null;
  const packedRows = Math.floor(buffer.size / 2 / Math.max(1, layout.sequence));
  const unpackedRows = problem.batch * paddedKeyRows(length, 64);
  if (unpackedRows <= 2 * packedRows + problem.batch * 64) return null;
  return `packed varlen sequences padded to the longest (${unpackedRows} rows a head) would be more than twice the ${packedRows} packed rows`;
}

/**
 * Why a padded copy of `source` with `rows` rows a head of `paddedDims` dims cannot be made, or null: packed varlen
 * sequences too uneven to unpack (`unpackedVarlenExcess`), or the copy or what it reads of the source beyond one
 * binding (a packed varlen source is read whole: its rows per sequence are on the GPU only).
 */
export function paddedCopyUnavailable(
  problem: AttentionProblem,
  source: Omit<PaddedSource, 'batches' | 'cuSeqlens'>,
  rows: number,
  paddedDims: number,
  limit: number,
): string | null {
  const { buffer, layout, heads, length, dims } = source;
  const excess = unpackedVarlenExcess(problem, layout, length, buffer);
  if (excess) return excess;
  const copy = problem.batch * heads * rows * paddedDims * 2;
  const read = problem.varlen ? buffer.size : layoutSpan(layout, problem.batch, heads, length, dims) * 2;
  const bytes = Math.max(copy, read);
  return bytes > limit ? `a padded copy of ${bytes} B beyond one binding (${limit} B)` : null;
}

/**
 * Why the direct form cannot run `problem` (compiled head dims `headDimQk` / `headDimV`, key tiles of at most 64) on
 * the k and v `buffers`, or null: a copy that cannot be made (`paddedCopyUnavailable`), or a NaN record beyond one
 * binding or without a storage buffer left. (Packed varlen runs otherwise: its sequences are unpacked into the
 * copies' batch entries, each as long as the longest.)
 */
export function paddedKeyValuesUnavailable(
  problem: AttentionProblem,
  headDimQk: number,
  headDimV: number,
  caps: FlashCaps,
  buffers: { readonly k: GPUBuffer; readonly v: GPUBuffer },
): string | null {
  const { layout, kvHeads, keyLength } = problem;
  const limit = caps.maxStorageBufferBindingSize;
  const rows = paddedKeyRows(keyLength, 64);
  const copies = [
    paddedCopyUnavailable(problem, { buffer: buffers.k, layout: layout.k, heads: kvHeads, length: keyLength, dims: problem.headDimQk }, rows, headDimQk, limit),
    paddedCopyUnavailable(problem, { buffer: buffers.v, layout: layout.v, heads: kvHeads, length: keyLength, dims: problem.headDimV }, rows, headDimV, limit),
  ].find((why) => why !== null);
  if (copies) return copies;
  const nanRecord = nanFlagWords(problem.batch * kvHeads * rows, headDimV) * 4;
  if (nanRecord > limit) return `a NaN record of ${nanRecord} B beyond one binding (${limit} B)`;
  if (caps.maxStorageBuffersPerShaderStage && storageBuffersNeeded({ ...problem, requiresGrad: false }) + 1 > caps.maxStorageBuffersPerShaderStage) {
    return 'no storage buffer left for the NaN record';
  }
  return null;
}

/** Whether the matrix kernels may load k and v from padded copies of them for this problem (its head-dim buckets). */
export function directKeyValuesAllowed(problem: AttentionProblem, caps: FlashCaps, buffers: { readonly k: GPUBuffer; readonly v: GPUBuffer }): boolean {
  return paddedKeyValuesUnavailable(problem, headDimBucket(problem.headDimQk), headDimBucket(problem.headDimV), caps, buffers) === null;
}

/** A tensor's rows as a padded copy records them: [batches, heads, length] rows of `dims` values. */
export interface PaddedSource {
  readonly buffer: GPUBuffer;
  readonly layout: AttentionLayout;
  readonly batches: number;
  readonly heads: number;
  readonly length: number;
  readonly dims: number;
  /** Packed varlen: the source's sequence offsets (cuSeqlensQ or cuSeqlensK); `length` is then the longest. */
  readonly cuSeqlens?: GPUBuffer;
}

/**
 * Records a padded copy of `source` (padded-key-values.wgsl): contiguous [batches, heads, rows, paddedDims] f16, rows
 * past `length` and dims past `dims` zero; returns the copy and its layout. `nanFlags` is written in mode 'record'.
 */
export function recordPaddedCopy(
  recorder: KernelRecorder,
  source: PaddedSource,
  rows: number,
  paddedDims: number,
  mode: PaddedCopyMode,
  label: string,
  nanFlags?: GPUBuffer,
): { readonly buffer: GPUBuffer; readonly layout: AttentionLayout } {
  const rowCount = source.batches * source.heads * rows;
  const buffer = recorder.scratch(rowCount * paddedDims * 2, GPUBufferUsage.STORAGE, label);
  const groups = Math.ceil((rowCount * paddedDims) / 8 / BLOCK_CHUNKS);
  if (groups > 0) {
    const { layout } = source;
    recorder.dispatch(
      copyKernel(mode, source.cuSeqlens !== undefined, rowsOfEights(layout, source.dims)),
      [
        [1, source.buffer],
        [2, buffer],
        ...(mode === 'record' ? [[3, nanFlags!] as const] : []),
        ...(source.cuSeqlens ? [[4, source.cuSeqlens] as const] : []),
      ],
      COPY_UNIFORMS.pack({
        offset: layout.offset,
        batch_stride: layout.batch,
        head_stride: layout.head,
        key_stride: layout.sequence,
        dim_stride: layout.dim,
        batches: source.batches,
        heads: source.heads,
        keys: source.length,
        padded_rows: rows,
        dims: source.dims,
        padded_dims: paddedDims,
      }),
      [Math.min(groups, MAX_WORKGROUPS), 1, 1],
    );
  }
  return { buffer, layout: { batch: source.heads * rows * paddedDims, head: rows * paddedDims, sequence: paddedDims, dim: 1, offset: 0 } };
}

/**
 * Records the copies of k and v (see the header) for key tiles of `blockKeys` and compiled head dims: by default
 * for the forward (v's NaN and ±∞ recorded in `nanFlags`); `modes` as the matrix backward kernels need them (k's
 * NaN copied as 0, v as it is; `nanFlags` is then not written).
 */
export function recordPaddedKeyValues(
  recorder: KernelRecorder,
  problem: AttentionProblem,
  buffers: { readonly k: GPUBuffer; readonly v: GPUBuffer; readonly cuSeqlensK?: GPUBuffer },
  blockKeys: number,
  headDimQk: number,
  headDimV: number,
  modes: { readonly k: Exclude<PaddedCopyMode, 'record'>; readonly v: Exclude<PaddedCopyMode, 'zero-nan'> } = { k: 'plain', v: 'record' },
): PaddedKeyValues {
  const rows = paddedKeyRows(problem.keyLength, blockKeys);
  const rowCount = problem.batch * problem.kvHeads * rows;
  const nanFlags = recorder.scratch(modes.v === 'record' ? nanFlagWords(rowCount, headDimV) * 4 : 4, GPUBufferUsage.STORAGE, 'flash v NaN record');
  const source = (name: 'k' | 'v', dims: number): PaddedSource => ({
    buffer: buffers[name],
    layout: problem.layout[name],
    batches: problem.batch,
    heads: problem.kvHeads,
    length: problem.keyLength,
    dims,
    cuSeqlens: varlenOffsets(problem, buffers.cuSeqlensK, 'cuSeqlensK'),
  });
  const v = recordPaddedCopy(recorder, source('v', problem.headDimV), rows, headDimV, modes.v, 'flash padded v', nanFlags);
  // A plain copy of k changes no value: where k's own rows serve, they are read in place (see the header).
  if (modes.k === 'plain' && keysReadInPlace(problem, buffers.k, rows, headDimQk, recorder.gpu.limits.maxStorageBufferBindingSize)) {
    return { k: buffers.k, v: v.buffer, nanFlags, problem: { ...problem, layout: { ...problem.layout, v: v.layout } } };
  }
  const k = recordPaddedCopy(recorder, source('k', problem.headDimQk), rows, headDimQk, modes.k, 'flash padded k');
  return { k: k.buffer, v: v.buffer, nanFlags, problem: { ...problem, layout: { ...problem.layout, k: k.layout, v: v.layout } } };
}

/**
 * Whether the forward's key matrices can be loaded from k itself instead of a padded copy (bench notes, entry 25: the
 * seed shape's forward 6–7 µs faster): not packed varlen, rows dense at the compiled head dim (no dims to pad), and
 * the last (batch, head)'s last whole tile of `rows` keys — the furthest any tile reads — inside k's binding (the
 * buffer up to `maxBinding` bytes).
 */
export function keysReadInPlace(problem: AttentionProblem, k: GPUBuffer, rows: number, headDimQk: number, maxBinding: number): boolean {
  const layout = problem.layout.k;
  if (problem.varlen || problem.headDimQk !== headDimQk || layout.dim !== 1 || layout.sequence !== headDimQk) return false;
  if (layout.batch < 0 || layout.head < 0) return false;
  const lastHead = layout.offset + (problem.batch - 1) * layout.batch + (problem.kvHeads - 1) * layout.head;
  return (lastHead + rows * headDimQk) * bytesPerElement(problem.dtype) <= Math.min(k.size, Math.floor(maxBinding / 4) * 4);
}

/** A packed varlen problem's offsets buffer for a padded copy (undefined when the problem is not varlen). */
export function varlenOffsets(problem: AttentionProblem, offsets: GPUBuffer | undefined, name: string): GPUBuffer | undefined {
  if (!problem.varlen) return undefined;
  if (!offsets) throw new InvalidArgumentError(`the problem needs buffers.${name}, but none was given`);
  return offsets;
}
