import {
  attentionDropoutStream,
  attentionDropoutThreshold,
  uniformLayout,
  type AttentionLayout,
  type AttentionProblem,
} from '@webattn/tensor';

const LAYOUT_FIELDS = (prefix: string) =>
  (['batch', 'head', 'seq', 'dim', 'offset'] as const).map((field) => [`${prefix}_${field}`, 'u32'] as const);

/** The uniforms every flash kernel reads (flash-common.wgsl's `Params`): sizes, strides, mask, alignment, dropout. */
export const FLASH_UNIFORMS = uniformLayout([
  ['batch', 'u32'],
  ['q_heads', 'u32'],
  ['kv_heads', 'u32'],
  ['query_length', 'u32'],
  ['key_length', 'u32'],
  ['head_dim_qk', 'u32'],
  ['head_dim_v', 'u32'],
  ['scale', 'f32'],
  ['softcap', 'f32'],
  ['negative_infinity', 'f32'],
  ['causal', 'u32'],
  ['bottom_right', 'u32'],
  ['window_left', 'i32'],
  ['window_right', 'i32'],
  ['dropout_threshold', 'u32'],
  // The call's attention dropout stream key (attentionDropoutStream).
  ['dropout_stream0', 'u32'],
  ['dropout_stream1', 'u32'],
  ['dropout_stream2', 'u32'],
  ['dropout_stream3', 'u32'],
  ['dropout_scale', 'f32'],
  ['mask_batch', 'u32'],
  ['mask_head', 'u32'],
  ['mask_row', 'u32'],
  ['mask_column', 'u32'],
  ['mask_offset', 'u32'],
  ['split_count', 'u32'],
  ['lse_residual', 'u32'],
  // The residual of logsumexp row r sits at lse_count + r − lse_base of the logsumexp binding (row-stats.ts).
  ['lse_count', 'u32'],
  ['opaque_zero', 'u32'],
  ['split_length', 'u32'],
  // The chunk a dispatch covers (binding-chunks.ts): its first batch entry, head, row and key, its row and key
  // ends and head count.
  ['batch_base', 'u32'],
  ['head_base', 'u32'],
  ['row_base', 'u32'],
  ['row_end', 'u32'],
  ['head_count', 'u32'],
  ['key_base', 'u32'],
  ['key_end', 'u32'],
  // Subtracted from a global row (b·Hq + h)·L + i to index the logsumexp and delta bindings (row-stats.ts).
  ['lse_base', 'u32'],
  ['delta_base', 'u32'],
  // dK/dV over part of a kv head's query heads and rows, summing in f32 scratch (flash-backward-key-value.wgsl).
  ['group_first', 'u32'],
  ['group_count', 'u32'],
  ['kv_partial', 'u32'],
  // dQ over part of the keys, summing in f32 scratch (flash-backward-query.wgsl): 1 continues the scratch's sums.
  ['dq_partial', 'u32'],
  // 1: workgroup x also takes the mirrored row or key block (balanced-blocks.ts, flash-common.wgsl's mirrored_block).
  ['paired_blocks', 'u32'],
  // The stored score gradients of a piece (stored-scores.ts, flash-common.wgsl's stored_score_slot): its first batch
  // entry and query head, query heads per batch entry, and a slot's keys and rows.
  ['ds_batch_base', 'u32'],
  ['ds_head_base', 'u32'],
  ['ds_slot_heads', 'u32'],
  ['ds_keys', 'u32'],
  ['ds_rows', 'u32'],
  ...LAYOUT_FIELDS('q'),
  ...LAYOUT_FIELDS('k'),
  ...LAYOUT_FIELDS('v'),
  ...LAYOUT_FIELDS('o'),
  ...LAYOUT_FIELDS('g'),
  ...LAYOUT_FIELDS('dq'),
  ...LAYOUT_FIELDS('dk'),
  ...LAYOUT_FIELDS('dv'),
  // The f32 scratch the dQ finish kernel reads (flash-backward-query-finish.wgsl).
  ...LAYOUT_FIELDS('s'),
]);

/** Layouts of the gradient tensors (backward); forward-only kernels receive the forward layouts there. */
export interface GradientLayouts {
  readonly gradOut: AttentionLayout;
  readonly dq: AttentionLayout;
  readonly dk: AttentionLayout;
  readonly dv: AttentionLayout;
}

function layoutValues(prefix: string, layout: AttentionLayout): Record<string, number> {
  return {
    [`${prefix}_batch`]: layout.batch,
    [`${prefix}_head`]: layout.head,
    [`${prefix}_seq`]: layout.sequence,
    [`${prefix}_dim`]: layout.dim,
    [`${prefix}_offset`]: layout.offset,
  };
}

/** A chunk's uniforms (binding-chunks.ts): bases, head count and shifted offsets such as `q_offset`. */
export type ChunkUniforms = Readonly<Record<string, number>>;

export function packFlashUniforms(
  problem: AttentionProblem,
  gradients?: GradientLayouts,
  split: { count: number; length: number } = { count: 1, length: problem.keyLength },
  logsumexpResidual = false,
  chunk: ChunkUniforms = {},
): ArrayBuffer {
  const mask = problem.mask.kind === 'none' ? null : problem.mask;
  const dropout = problem.dropout && problem.dropout.p > 0 ? problem.dropout : null;
  const stream = dropout ? attentionDropoutStream(dropout.seed, dropout.offset >>> 0) : [0, 0, 0, 0];
  const layout = problem.layout;
  return FLASH_UNIFORMS.pack({
    batch: problem.batch,
    q_heads: problem.queryHeads,
    kv_heads: problem.kvHeads,
    query_length: problem.queryLength,
    key_length: problem.keyLength,
    head_dim_qk: problem.headDimQk,
    head_dim_v: problem.headDimV,
    scale: problem.scale,
    softcap: problem.softcap ?? 0,
    negative_infinity: Number.NEGATIVE_INFINITY,
    causal: problem.causal ? 1 : 0,
    bottom_right: problem.causalAlignment === 'bottom-right' ? 1 : 0,
    window_left: problem.window?.left ?? -1,
    window_right: problem.window?.right ?? -1,
    dropout_threshold: dropout ? attentionDropoutThreshold(dropout.p) : 0,
    dropout_stream0: stream[0]!,
    dropout_stream1: stream[1]!,
    dropout_stream2: stream[2]!,
    dropout_stream3: stream[3]!,
    dropout_scale: dropout ? 1 / (1 - dropout.p) : 1,
    mask_batch: mask?.strides.batch ?? 0,
    mask_head: mask?.strides.head ?? 0,
    mask_row: mask?.strides.row ?? 0,
    mask_column: mask?.strides.column ?? 0,
    mask_offset: mask?.offset ?? 0,
    split_count: split.count,
    lse_residual: logsumexpResidual ? 1 : 0,
    lse_count: problem.batch * problem.queryHeads * problem.queryLength,
    // Always 0; the compiler cannot know it (see the logsumexp residual in flash-forward.wgsl).
    opaque_zero: 0,
    split_length: split.length,
    batch_base: 0,
    head_base: 0,
    row_base: 0,
    row_end: problem.queryLength,
    head_count: problem.queryHeads,
    key_base: 0,
    key_end: problem.keyLength,
    lse_base: 0,
    delta_base: 0,
    group_first: 0,
    group_count: problem.kvHeads > 0 ? problem.queryHeads / problem.kvHeads : 0,
    kv_partial: 0,
    dq_partial: 0,
    paired_blocks: 0,
    ds_batch_base: 0,
    ds_head_base: 0,
    ds_slot_heads: 0,
    ds_keys: 0,
    ds_rows: 0,
    ...layoutValues('q', layout.q),
    ...layoutValues('k', layout.k),
    ...layoutValues('v', layout.v),
    ...layoutValues('o', layout.out),
    ...layoutValues('g', gradients?.gradOut ?? layout.out),
    ...layoutValues('dq', gradients?.dq ?? layout.q),
    ...layoutValues('dk', gradients?.dk ?? layout.k),
    ...layoutValues('dv', gradients?.dv ?? layout.v),
    ...layoutValues('s', gradients?.dq ?? layout.q),
    ...chunk,
  } as Parameters<typeof FLASH_UNIFORMS.pack>[0]);
}
