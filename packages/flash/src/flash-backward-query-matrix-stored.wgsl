// FlashAttention backward, dQ from stored score gradients on subgroup matrices (16×16×16 f16 → f32): dQ = dS K, one
// plain matrix product per (batch, query head). The matrix dK/dV kernel compiled with STORE_SCORES
// (flash-backward-key-value-matrix.wgsl) has written dS · scale as f16 for every pair of every query tile it visited
// (0 where the pair is not allowed), so this kernel neither recomputes S and dP (two of the three products of
// flash-backward-query-matrix.wgsl) nor reads q, v, dO, delta or any mask.
//
// A workgroup is SUBGROUPS subgroups of 32 lanes; each owns 16 consecutive query rows of one (batch, head) and loops
// over the 16-key tiles some of its rows may attend, loading dS straight from the scratch (layout: flash-common.wgsl's
// stored_half_slot) and k from the padded copy (padded-key-values.ts; NaN values copied as 0: a row that may attend a
// NaN key has a NaN logsumexp and gets a NaN dQ, and the zero dS of a masked pair cannot spread them). Every pair it
// reads was written: its 16 rows lie inside one of dK/dV's query tiles (whole multiples of 16 rows) and its 16-key
// tiles inside one of dK/dV's key blocks, so a pair some row may attend means dK/dV visited all of them. Keys are
// summed in ascending order: deterministic.

const SUBGROUP_SIZE: u32 = 32u;
const SUBGROUPS: u32 = ${SUBGROUPS}u;
const HEAD_DIM_QK: u32 = ${HEAD_DIM_QK}u;
const THREADS: u32 = SUBGROUPS * SUBGROUP_SIZE;
const S_STRIDE: u32 = HEAD_DIM_QK + 1u;

@group(0) @binding(6) var<storage, read> k: array<f16>;
@group(0) @binding(9) var<storage, read> logsumexp: array<f32>;
#if DQ_VEC8
@group(0) @binding(11) var<storage, read_write> dq: array<vec4<u32>>;
#else
@group(0) @binding(11) var<storage, read_write> dq: array<f16>;
#endif
@group(0) @binding(13) var<storage, read> stored_scores: array<f16>;

// dQ of each subgroup's rows on their way out (storeGradientRow reads it by this name).
var<workgroup> score_scratch: array<f32, SUBGROUPS * 16u * S_STRIDE>;
var<workgroup> sequence_shared: Sequence;

@compute @workgroup_size(THREADS)
fn main(
  @builtin(local_invocation_index) lid: u32,
  @builtin(workgroup_id) grid_id: vec3<u32>,
  @builtin(num_workgroups) groups: vec3<u32>,
) {
  // Under a banded mask the heaviest row blocks first (flash-common.wgsl); otherwise the plain order, x fastest.
  let wid = select(grid_id, plane_chunked_workgroup(grid_id, groups, later_rows_heavier()), banded());
  let subgroup = lid / SUBGROUP_SIZE;
  let lane = lid % SUBGROUP_SIZE;
  let b = params.batch_base + wid.z;
  let h = params.head_base + wid.y;
  let kv_head = h / (params.q_heads / params.kv_heads);
  let row0 = params.row_base + wid.x * SUBGROUPS * 16u;
  let subgroup_row0 = row0 + subgroup * 16u;
  if (lid == 0u) {
    sequence_shared = load_sequence(b);
  }
  let sequence = workgroupUniformLoad(&sequence_shared);
  if (row0 >= sequence.q_len) {
    return;
  }
  let row_limit = min(sequence.q_len, params.row_end);
  let s_base = subgroup * 16u * S_STRIDE;

  // dQ of the subgroup's rows in result matrices dq_m (matrix-blocks.ts).
  ${MATRIX_DECLARATIONS}
  if (subgroup_row0 < row_limit) {
    // The 16-key tiles some of the subgroup's rows may attend (the others were never written).
    let attended = attended_key_tiles(subgroup_row0, min(subgroup_row0 + 16u, row_limit) - 1u, sequence, 16u);
    let ds_row = stored_half_slot(b, h) + subgroup_row0 * params.ds_keys;
    // (A packed varlen sequence's keys start at row 0 of its batch entry in the copy.)
    let k_base = params.k_offset + b * params.k_batch + kv_head * params.k_head;
    for (var tile = attended.x; tile < attended.y; tile++) {
      let key0 = tile * 16u;
      let k_row = k_base + key0 * HEAD_DIM_QK;
      ${MATRIX_QUERY_GRADIENT}
    }
  }
  ${MATRIX_STORE_GRADIENT}
  workgroupBarrier();

  // Two lanes per row, half of its dims each.
  let local_row = lane / 2u;
  let part = lane % 2u;
  let i = subgroup_row0 + local_row;
  // A NaN logsumexp (the forward found a NaN this row may attend) makes the row's dQ NaN.
  let poisoned = i < row_limit && is_nan(logsumexp[(b * params.q_heads + h) * params.query_length + i - params.lse_base]);
  ${STORE_DQ}
}
