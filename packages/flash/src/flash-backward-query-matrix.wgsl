// FlashAttention-2 backward for dQ on subgroup matrices (16×16×16 f16 → f32), the partner of the matrix forward's
// direct form: k and v are the padded copies of padded-key-values.ts (k with its NaN values copied as 0, v as it
// is; packed varlen sequences unpacked into batch entries), so every matrix load of an attended key tile stays
// inside its head's rows. A workgroup is SUBGROUPS subgroups of 32 lanes; each owns 16 consecutive query rows of
// one (batch, head) and keeps their q and dO rows as left matrices and dQ as result matrices for the whole key loop.
// Per key tile of BLOCK_N keys:
//   1. S = Q Kᵀ (the same products, in the same order, as the forward's, so P is exact) and dP = dO Vᵀ on the
//      matrices, stored to the subgroup's f32 scratches;
//   2. two lanes per row take half of the row's keys each: P = exp(S − logsumexp) where the pair is allowed
//      (scale, softcap, masks and bounds as flash-common.wgsl), dS = P ∘ (dP̃ − delta) · softcap′ · scale, with
//      dP̃ the dropout-kept dP (flash-backward-query-tiled.wgsl's formula), as f16 into the probability scratch
//      (0 where the pair is not allowed: a NaN of dP there never reaches dQ);
//   3. dQ += dS K on the matrices.
// NaN inputs as the tiled kernel: a row whose logsumexp is NaN gets a NaN dQ; a NaN of v makes dP, so dS and dQ,
// NaN in the rows that attend its key; NaN keys are zero in the k copy (every row that may attend one has a NaN
// logsumexp). Only for whole key ranges (no f32 partial sums): the recording falls back to the tiled kernel else.

const SUBGROUP_SIZE: u32 = 32u;
const SUBGROUPS: u32 = ${SUBGROUPS}u;
const BLOCK_N: u32 = ${BLOCK_N}u;
const HEAD_DIM_QK: u32 = ${HEAD_DIM_QK}u;
const HEAD_DIM_V: u32 = ${HEAD_DIM_V}u;
const THREADS: u32 = SUBGROUPS * SUBGROUP_SIZE;
// Each lane: half of one row's keys per tile (and half of its dQ dims at the end: storeGradientRow).
const COLUMNS_PER_LANE: u32 = BLOCK_N / 2u;
// Row strides (elements). The score scratch also carries dQ at the end; the probability scratch stages the q and
// dO rows before the loop and holds dS in it.
const S_STRIDE: u32 = max(BLOCK_N, HEAD_DIM_QK) + 1u;
const DP_STRIDE: u32 = BLOCK_N + 1u;
const P_STRIDE: u32 = max(BLOCK_N, max(HEAD_DIM_QK, HEAD_DIM_V)) + 8u;

// With Q_VEC8 / G_VEC8 / DQ_VEC8 q and dO are read and dq written in chunks of 8 f16 (16 bytes) where their rows
// allow (as the matrix forward's q and out: bench notes, entry 23).
#if Q_VEC8
@group(0) @binding(5) var<storage, read> q: array<vec4<u32>>;
#else
@group(0) @binding(5) var<storage, read> q: array<f16>;
#endif
@group(0) @binding(6) var<storage, read> k: array<f16>;
@group(0) @binding(7) var<storage, read> v: array<f16>;
#if G_VEC8
@group(0) @binding(8) var<storage, read> grad_out: array<vec4<u32>>;
#else
@group(0) @binding(8) var<storage, read> grad_out: array<f16>;
#endif
@group(0) @binding(9) var<storage, read> logsumexp: array<f32>;
@group(0) @binding(10) var<storage, read> delta: array<f32>;
#if DQ_VEC8
@group(0) @binding(11) var<storage, read_write> dq: array<vec4<u32>>;
#else
@group(0) @binding(11) var<storage, read_write> dq: array<f16>;
#endif

var<workgroup> score_scratch: array<f32, SUBGROUPS * 16u * S_STRIDE>;
var<workgroup> dp_scratch: array<f32, SUBGROUPS * 16u * DP_STRIDE>;
var<workgroup> probability_scratch: array<f16, SUBGROUPS * 16u * P_STRIDE>;
var<workgroup> sequence_shared: Sequence;

@compute @workgroup_size(THREADS)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
  let b = params.batch_base + wid.z;
  let h = params.head_base + wid.y;
  if (lid == 0u) {
    sequence_shared = load_sequence(b);
  }
  let sequence = workgroupUniformLoad(&sequence_shared);
  gradient_row_block(lid, b, h, wid.x, 0u, sequence);
  // Causal balance (flash-common.wgsl's mirrored_block): the row block whose key range complements this one's.
  let mirrored = mirrored_block(wid.x, params.row_end - params.row_base, SUBGROUPS * 16u);
  if (mirrored != wid.x) {
    gradient_row_block(lid, b, h, mirrored, 1u, sequence);
  }
}

// dQ of rows row_base + block · SUBGROUPS · 16 onwards of (b, h); `turn` (0 or 1: this workgroup's first or second
// block) is kept in every salt so that no matrix load of the second block can be merged with the first's.
fn gradient_row_block(lid: u32, b: u32, h: u32, block: u32, turn: u32, sequence: Sequence) {
  let block_rows = SUBGROUPS * 16u;
  let subgroup = lid / SUBGROUP_SIZE;
  let lane = lid % SUBGROUP_SIZE;
  let local_row = lane / 2u;
  let part = lane % 2u;
  let kv_head = h / (params.q_heads / params.kv_heads);
  let row0 = params.row_base + block * block_rows;
  let subgroup_row0 = row0 + subgroup * 16u;
  let batch_head = b * params.q_heads + h;
  let block_site = turn << 30u;
  if (row0 >= sequence.q_len) {
    return;
  }
  let negative_infinity = params.negative_infinity;
  let dqk = params.head_dim_qk;
  let dvd = params.head_dim_v;
  let row_limit = min(sequence.q_len, params.row_end);
  let row_last = min(row0 + block_rows, row_limit) - 1u;
  let attended = attended_key_tiles(row0, row_last, sequence, BLOCK_N);
  let tile_begin = attended.x;
  let tile_end = attended.y;
  let s_base = subgroup * 16u * S_STRIDE;
  let dp_base = subgroup * 16u * DP_STRIDE;
  let p_base = subgroup * 16u * P_STRIDE;

  // The subgroup's q rows, then its dO rows (zero past the rows this dispatch computes), through the probability
  // scratch into left matrices q_m / g_m; dQ in result matrices dq_m (matrix-blocks.ts).
  ${STAGE_Q}
  workgroupBarrier();
  ${MATRIX_DECLARATIONS}
  ${MATRIX_LOAD_QUERY}
  workgroupBarrier();
  ${STAGE_GRAD_OUT}
  workgroupBarrier();
  ${MATRIX_LOAD_GRAD}

  // This lane's row: bounds (inactive rows, rows without any allowed key and NaN rows: empty), statistics.
  let i = subgroup_row0 + local_row;
  var lo = 1;
  var hi = 0;
  var lse = negative_infinity;
  var lse_residual = 0.0;
  var row_delta = 0.0;
  var poisoned = false;
  if (i < row_limit) {
    let row_index = batch_head * params.query_length + i;
    lse = logsumexp[row_index - params.lse_base];
    if (params.lse_residual == 1u) {
      lse_residual = logsumexp[params.lse_count + row_index - params.lse_base];
    }
    row_delta = delta[row_index - params.delta_base];
    poisoned = is_nan(lse);
    if (!poisoned && lse > negative_infinity) {
      let bounds = key_bounds(i32(i), sequence);
      lo = bounds.x;
      hi = bounds.y;
    }
  }
  let k_base = params.k_offset + b * params.k_batch + kv_head * params.k_head;
  let v_base = params.v_offset + b * params.v_batch + kv_head * params.v_head;

  let skips = mark_live_key_tiles(b, h, tile_begin * BLOCK_N, max(tile_end, tile_begin) - tile_begin, BLOCK_N, lid, THREADS);
  for (var tile = tile_begin; tile < tile_end; tile++) {
    if (skips && !key_tile_live(tile - tile_begin)) {
      continue;
    }
    let key0 = tile * BLOCK_N;
    let tile_site = block_site + (tile + 1u) * 256u;
    // (A packed varlen sequence's keys start at row 0 of its batch entry in the copies.)
    let k_row = k_base + key0 * HEAD_DIM_QK;
    let v_row = v_base + key0 * HEAD_DIM_V;

    // 1. S and dP into the scratches.
    {
      ${MATRIX_SCORES}
    }
    {
      ${MATRIX_VALUE_PRODUCTS}
    }
    workgroupBarrier();

    // 2. dS for this lane's half of its row.
    let column0 = key0 + part * COLUMNS_PER_LANE;
    let lane_scores = s_base + local_row * S_STRIDE + part * COLUMNS_PER_LANE;
    let lane_products = dp_base + local_row * DP_STRIDE + part * COLUMNS_PER_LANE;
    let lane_gradients = p_base + local_row * P_STRIDE + part * COLUMNS_PER_LANE;
#if DROPOUT
    var draw: vec4<u32>;
#endif
    for (var c4 = 0u; c4 < COLUMNS_PER_LANE / 4u; c4++) {
#if DROPOUT
      // One draw serves eight keys (column0 is a multiple of 8).
      if ((c4 & 1u) == 0u) {
        draw = attention_dropout_draw(dropout_stream(), batch_head, i, (column0 + c4 * 4u) >> 3u);
      }
      let words = attention_dropout_values(draw, c4 & 1u);
#endif
      for (var t = 0u; t < 4u; t++) {
        let c = c4 * 4u + t;
        let j = column0 + c;
        var ds = 0.0;
        if (i32(j) >= lo && i32(j) <= hi) {
          let capped = capped_score(score_scratch[lane_scores + c]);
          let score = masked_score(capped.x, b, h, i, j);
          if (score > negative_infinity) {
            let p = exp((score - lse) - lse_residual);
#if DROPOUT
            let keep = dropout_factor(words[t]);
#else
            let keep = 1.0;
#endif
            ds = p * (dp_scratch[lane_products + c] * keep - row_delta) * capped.y * params.scale;
          }
        }
        probability_scratch[lane_gradients + c] = f16(ds);
      }
    }
    workgroupBarrier();

    // 3. dQ += dS K.
    {
      ${MATRIX_QUERY_GRADIENT}
    }
    // The dS loads above complete before the next tile's dS overwrites the scratch.
    workgroupBarrier();
  }

  // dQ through the score scratch; each lane writes half of its row's dims (chunked-rows.ts).
  ${MATRIX_STORE_GRADIENT}
  workgroupBarrier();
  ${STORE_DQ}
}
