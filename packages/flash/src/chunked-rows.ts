/**
 * WGSL for the subgroup-matrix kernels' row traffic, as `${NAME}` replacements: a tensor moves in 16-byte chunks of 8
 * f16 where its rows allow (`rowsOfEights`; the kernel then binds it as array<vec4<u32>> under its *_VEC8 flag),
 * element by element otherwise. One generator per pattern instead of a hand-written pair of loops per tensor.
 */
import type { AttentionLayout } from '@webattn/tensor';

/**
 * Whether a tensor's rows are contiguous runs of `dims` elements starting at multiples of 8, so that a kernel may
 * move them as 16-byte chunks of 8 f16 (binding windows start at multiples of 128 elements: binding-chunks.ts).
 */
export function rowsOfEights(layout: AttentionLayout, dims: number): boolean {
  return rowsInChunksOf(8, layout, dims);
}

/**
 * Whether a tensor's rows are contiguous runs of `dims` elements starting at multiples of 4, so that a kernel may
 * read them as vec4<f32> (vec4-loaders.ts; binding windows start at multiples of 128 elements as above).
 */
export function rowsOfFours(layout: AttentionLayout, dims: number): boolean {
  return rowsInChunksOf(4, layout, dims);
}

function rowsInChunksOf(elements: number, layout: AttentionLayout, dims: number): boolean {
  return layout.dim === 1 && [dims, layout.offset, layout.batch, layout.head, layout.sequence].every((n) => n % elements === 0);
}

/** A tensor as a kernel addresses it: its binding, the prefix of its layout uniforms, compiled and valid dims. */
export interface KernelRows {
  readonly tensor: string;
  /** `params.<uniforms>_offset`, `_batch`, `_head`, `_seq`, `_dim`. */
  readonly uniforms: string;
  /** The compiled dims (a WGSL constant, a multiple of 16). */
  readonly dims: string;
  /** The problem's dims (a WGSL expression). */
  readonly valid: string;
  /** Whether the binding is array<vec4<u32>> (chunks of 8 f16) rather than array<f16>. */
  readonly chunked: boolean;
}

/**
 * Stages `rows` query rows (a WGSL expression) of `source` into the subgroup's probability scratch, zero past the
 * valid rows and dims. The kernel provides lane, SUBGROUP_SIZE, subgroup_row0, row_limit, b, h, sequence,
 * probability_scratch, p_base and P_STRIDE.
 */
export function stageQueryRows(source: KernelRows, rows: string): string {
  const u = (name: string) => `params.${source.uniforms}_${name}`;
  const row = `${u('offset')} + b * ${u('batch')} + h * ${u('head')} + (sequence.q_start + i) * ${u('seq')}`;
  if (source.chunked) {
    return `for (var e = lane; e < ${rows} * ${source.dims} / 8u; e += SUBGROUP_SIZE) {
    let r = e / (${source.dims} / 8u);
    let d = (e % (${source.dims} / 8u)) * 8u;
    let i = subgroup_row0 + r;
    var chunk = vec4<u32>(0u);
    if (i < row_limit && d < ${source.valid}) {
      chunk = ${source.tensor}[(${row} + d) / 8u];
    }
    let values = unpack_chunk(chunk);
    for (var t = 0u; t < 8u; t++) {
      probability_scratch[p_base + r * P_STRIDE + d + t] = values[t];
    }
  }`;
  }
  return `for (var e = lane; e < ${rows} * ${source.dims}; e += SUBGROUP_SIZE) {
    let r = e / ${source.dims};
    let d = e % ${source.dims};
    let i = subgroup_row0 + r;
    var value = f16(0.0);
    if (i < row_limit && d < ${source.valid}) {
      value = ${source.tensor}[${row} + d * ${u('dim')}];
    }
    probability_scratch[p_base + r * P_STRIDE + d] = value;
  }`;
}

/** The names a kernel gives one gradient row (storeGradientRow): a key row of dK/dV, or a query row of dQ. */
const GRADIENT_ROWS = {
  key: { index: 'j', limit: 'key_end', head: 'kv_head', start: 'k_start', scratchRow: 'c' },
  query: { index: 'i', limit: 'row_limit', head: 'h', start: 'q_start', scratchRow: 'local_row' },
} as const;

/**
 * Writes a gradient row's half `part` of `target`'s dims from the f32 scratch `scratch` (NaN where `poisoned`): key
 * j of dK or dV (`side` 'key': the kernel provides j, key_end, c — the key's scratch row — and kv_head) or query row
 * i of dQ ('query': i, row_limit, local_row and h). Both provide part, b, sequence, s_base, S_STRIDE and poisoned.
 */
export function storeGradientRow(target: KernelRows, side: keyof typeof GRADIENT_ROWS, scratch = 'score_scratch'): string {
  const { index, limit, head, start, scratchRow } = GRADIENT_ROWS[side];
  const u = (name: string) => `params.${target.uniforms}_${name}`;
  const half = `${target.dims} / 2u`;
  const value = (d: string) => `select(f16(${scratch}[s_base + ${scratchRow} * S_STRIDE + ${d}]), nan_stored(), poisoned)`;
  const store = target.chunked
    ? `for (var d = part * (${half}); d < (part + 1u) * (${half}) && d < ${target.valid}; d += 8u) {
      var values: array<f16, 8>;
      for (var t = 0u; t < 8u; t++) {
        values[t] = ${value('d + t')};
      }
      ${target.tensor}[(address + d) / 8u] = pack_chunk(values);
    }`
    : `for (var d = part * (${half}); d < (part + 1u) * (${half}); d++) {
      if (d < ${target.valid}) {
        ${target.tensor}[address + d * ${u('dim')}] = ${value('d')};
      }
    }`;
  return `if (${index} < ${limit}) {
    let address = ${u('offset')} + b * ${u('batch')} + ${head} * ${u('head')} + (sequence.${start} + ${index}) * ${u('seq')};
    ${store}
  }`;
}
