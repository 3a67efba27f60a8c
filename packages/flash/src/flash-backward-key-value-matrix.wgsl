// FlashAttention-2 backward for dK and dV on subgroup matrices (16×16×16 f16 → f32), after the matrix forward's
// direct form. q, k, v and dO are padded copies (padded-key-values.ts: contiguous, each head padded with zero rows
// to whole tiles and zero dims to the compiled head dim; q's and k's NaN values copied as 0 — k's for the dQ kernel,
// which shares the copy; here a NaN key's rows have a NaN logsumexp either way), so every matrix load stays
// inside its head's rows. A workgroup is SUBGROUPS subgroups of 32 lanes; each owns 16 consecutive keys of one
// (batch, kv head) and keeps their k and v rows as left matrices and dK, dV as result matrices. It loops over the
// query heads that share the kv head (GQA) and the query tiles of BLOCK_M rows that may attend its keys:
//   1. Sᵀ = K Qᵀ and dPᵀ = V dOᵀ on the matrices, stored to the subgroup's f32 scratches;
//   2. each lane takes (row, 8 aligned keys) pairs (their rows' logsumexp and delta read before step 1, so that the
//      products hide the loads): P = exp(S − logsumexp) where the pair is allowed (scale,
//      softcap, masks, bounds: flash-common.wgsl), P̃ = P · dropout keep, dS = P ∘ (dP̃ − delta) · softcap′ · scale
//      (flash-backward-key-value-tiled.wgsl's formulas), both as f16 into the subgroup's scratches (0 where the
//      pair is not allowed); a pair whose eight keys all lie inside its row's bounds skips the bound tests
//      (pair_gradients compiled twice through inlining: bench notes, entry 41);
//   3. dV += P̃ᵀ dO and dK += dSᵀ Q on the matrices.
// Compiled with STORE_SCORES (matrix-stored-scores.ts), step 2 also writes each pair's dS · scale as f16 to
// stored_scores (every pair of every query tile it visits, 0 where not allowed), from which
// flash-backward-query-matrix-stored.wgsl computes dQ without recomputing S and dP.
// NaN inputs as the tiled kernel: a key that a row with a NaN logsumexp may attend gets NaN dK and dV (NaN query
// rows are zero in the q copy, so that the zero dS of a masked pair cannot spread them). Only unsplit (every key of
// a kv head in one dispatch, all its query rows): the recording falls back to the tiled kernel otherwise.

const SUBGROUP_SIZE: u32 = 32u;
const SUBGROUPS: u32 = ${SUBGROUPS}u;
const BLOCK_M: u32 = ${BLOCK_M}u;
const HEAD_DIM_QK: u32 = ${HEAD_DIM_QK}u;
const HEAD_DIM_V: u32 = ${HEAD_DIM_V}u;
const THREADS: u32 = SUBGROUPS * SUBGROUP_SIZE;
// Row strides (elements): scores and dP (keys × rows, f32; the score scratch also carries dK and dV at the end),
// P̃ and dS (keys × rows, f16). Step 2's f16 stores put the two lanes of a row 8 keys apart: at BLOCK_M + 8 those
// land in the same banks (8 · P_STRIDE / 2 words ≡ 0 mod 32), at BLOCK_M + 2 in disjoint ones (bench notes, entry
// 40: the seed's backward 1.07× faster; other pads measured there). dP rows take 2 elements of padding at head dim
// 32 (its backward 1.025× faster), 1 elsewhere (at 64, 2 ran 1.03× slower: entry 41).
const S_STRIDE: u32 = max(BLOCK_M, max(HEAD_DIM_QK, HEAD_DIM_V)) + 1u;
const DP_STRIDE: u32 = BLOCK_M + select(1u, 2u, max(HEAD_DIM_QK, HEAD_DIM_V) == 32u);
const P_STRIDE: u32 = BLOCK_M + 2u;
// (row, 8-key group) pairs per lane and query tile (step 2).
const PAIRS: u32 = BLOCK_M * 2u / SUBGROUP_SIZE;

@group(0) @binding(5) var<storage, read> q: array<f16>;
@group(0) @binding(6) var<storage, read> k: array<f16>;
@group(0) @binding(7) var<storage, read> v: array<f16>;
@group(0) @binding(8) var<storage, read> grad_out: array<f16>;
@group(0) @binding(9) var<storage, read> logsumexp: array<f32>;
@group(0) @binding(10) var<storage, read> delta: array<f32>;
// With DK_VEC8 / DV_VEC8 dk and dv are written in chunks of 8 f16 (16 bytes) where their rows allow (as the matrix
// forward's out: bench notes, entry 23).
#if DK_VEC8
@group(0) @binding(11) var<storage, read_write> dk: array<vec4<u32>>;
#else
@group(0) @binding(11) var<storage, read_write> dk: array<f16>;
#endif
#if DV_VEC8
@group(0) @binding(12) var<storage, read_write> dv: array<vec4<u32>>;
#else
@group(0) @binding(12) var<storage, read_write> dv: array<f16>;
#endif

#if STORE_SCORES
// dS · scale of every pair visited, 8 keys of one row per element (layout: stored_half_slot).
@group(0) @binding(13) var<storage, read_write> stored_scores: array<vec4<u32>>;
#endif

var<workgroup> score_scratch: array<f32, SUBGROUPS * 16u * S_STRIDE>;
var<workgroup> dp_scratch: array<f32, SUBGROUPS * 16u * DP_STRIDE>;
var<workgroup> weight_scratch: array<f16, SUBGROUPS * 16u * P_STRIDE>;
var<workgroup> gradient_scratch: array<f16, SUBGROUPS * 16u * P_STRIDE>;
// 1: some row with a NaN logsumexp may attend the key.
var<workgroup> key_poisoned: array<atomic<u32>, SUBGROUPS * 16u>;
var<workgroup> sequence_shared: Sequence;

// What step 2 knows of one (row, 8 keys) pair: the row's logsumexp, its rounding residual and delta, whether the
// logsumexp is NaN, its key bounds; batch, query head, row, the first key and its index in the workgroup's keys.
struct PairInputs {
  lse: f32,
  residual: f32,
  row_delta: f32,
  row_nan: bool,
  bounds: vec2<i32>,
  b: u32,
  h: u32,
  i: u32,
  j0: u32,
  local_key0: u32,
  valid_end: u32,
}

// P̃ and dS of one pair's eight keys (weights and ds: 0 where the pair is not allowed) from their scores and dP;
// keep_words: the eight keys' dropout words (with DROPOUT). With `bounded` false the caller knows every key inside
// the row's bounds and the valid keys and the row's logsumexp not NaN, and those tests fold away once the driver
// inlines the call.
fn pair_gradients(
  pair: PairInputs,
  bounded: bool,
  scores: ptr<function, array<f32, 8>>,
  products: ptr<function, array<f32, 8>>,
  keep_words: array<vec4<u32>, 2>,
  weights: ptr<function, array<f32, 8>>,
  ds: ptr<function, array<f32, 8>>,
) {
  let negative_infinity = params.negative_infinity;
  for (var t = 0u; t < 8u; t++) {
    let j = pair.j0 + t;
    if (bounded && (j >= pair.valid_end || i32(j) < pair.bounds.x || i32(j) > pair.bounds.y)) {
      continue;
    }
    let capped = capped_score((*scores)[t]);
    let score = masked_score(capped.x, pair.b, pair.h, pair.i, j);
    // Bits, not ==: the score of a NaN row may itself be NaN (only a removed pair is exactly −∞).
    if (bounded && pair.row_nan && bitcast<u32>(score) != bitcast<u32>(negative_infinity)) {
      atomicStore(&key_poisoned[pair.local_key0 + t], 1u);
    } else if (score > negative_infinity) {
      let p = exp((score - pair.lse) - pair.residual);
#if DROPOUT
      let keep = dropout_factor(keep_words[t / 4u][t % 4u]);
#else
      let keep = 1.0;
#endif
      (*weights)[t] = p * keep;
      (*ds)[t] = p * ((*products)[t] * keep - pair.row_delta) * capped.y * params.scale;
    }
  }
}

@compute @workgroup_size(THREADS)
#if HEAVIEST_FIRST
fn main(
  @builtin(local_invocation_index) lid: u32,
  @builtin(workgroup_id) grid_id: vec3<u32>,
  @builtin(num_workgroups) groups: vec3<u32>,
) {
  // Compiled for banded masks (balanced-blocks.ts): the heaviest key blocks first (flash-common.wgsl's plane-chunked
  // order; earlier keys are attended by more rows where later rows attend more keys).
  let wid = plane_chunked_workgroup(grid_id, groups, !later_rows_heavier());
#else
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
#endif
  let b = params.batch_base + wid.z;
  let kv_head = params.head_base + wid.y;
  if (lid == 0u) {
    sequence_shared = load_sequence(b);
  }
  let sequence = workgroupUniformLoad(&sequence_shared);
  gradient_key_block(lid, b, kv_head, wid.x, sequence);
}

// dK and dV of keys key_base + block · SUBGROUPS · 16 onwards of (b, kv_head).
fn gradient_key_block(lid: u32, b: u32, kv_head: u32, block: u32, sequence: Sequence) {
  let block_keys = SUBGROUPS * 16u;
  let subgroup = lid / SUBGROUP_SIZE;
  let lane = lid % SUBGROUP_SIZE;
  let key0 = params.key_base + block * block_keys;
  let subgroup_key0 = key0 + subgroup * 16u;
  let key_end = min(sequence.k_len, params.key_end);
  let valid_end = min(sequence.k_valid, params.key_end);
  if (key0 >= key_end) {
    return;
  }
  let negative_infinity = params.negative_infinity;
  let group = params.q_heads / params.kv_heads;

  // Query tiles that may attend some key of this workgroup.
  let attended = attended_query_tiles(key0, block_keys, valid_end, sequence, BLOCK_M);
  let tile_begin = attended.x;
  let tile_end = attended.y;
  let row_limit = min(sequence.q_len, params.row_end);
  let s_base = subgroup * 16u * S_STRIDE;
  let dp_base = subgroup * 16u * DP_STRIDE;
  let p_base = subgroup * 16u * P_STRIDE;
  let k_row = params.k_offset + b * params.k_batch + kv_head * params.k_head + subgroup_key0 * HEAD_DIM_QK;
  let v_row = params.v_offset + b * params.v_batch + kv_head * params.v_head + subgroup_key0 * HEAD_DIM_V;
  for (var c = lid; c < block_keys; c += THREADS) {
    atomicStore(&key_poisoned[c], 0u);
  }
  workgroupBarrier();
  // The subgroup's k and v rows as left matrices k_m / v_m, dK and dV in result matrices (matrix-blocks.ts).
  ${MATRIX_DECLARATIONS}

  for (var head_in_group = params.group_first; head_in_group < params.group_first + params.group_count; head_in_group++) {
    let h = kv_head * group + head_in_group;
    let batch_head = b * params.q_heads + h;
    let q_base = params.q_offset + b * params.q_batch + h * params.q_head;
    let g_base = params.g_offset + b * params.g_batch + h * params.g_head;
    for (var tile = tile_begin; tile < tile_end; tile++) {
      let row0 = tile * BLOCK_M;
      // Differs per head and tile (see salt).
      let tile_site = (tile + 1u + head_in_group * 65536u) * 256u;
      let q_row = q_base + row0 * HEAD_DIM_QK;
      let g_row = g_base + row0 * HEAD_DIM_V;

      // The logsumexp, residual and delta of this lane's rows in step 2 (−∞, 0, 0 for rows past the sequence or
      // outside the dispatch's rows: they take no part), read before step 1 so that the products hide the loads.
      var lse_of: array<f32, PAIRS>;
      var residual_of: array<f32, PAIRS>;
      var delta_of: array<f32, PAIRS>;
      for (var n = 0u; n < PAIRS; n++) {
        let i = row0 + (lane + n * SUBGROUP_SIZE) / 2u;
        lse_of[n] = negative_infinity;
        residual_of[n] = 0.0;
        delta_of[n] = 0.0;
        if (i >= params.row_base && i < row_limit) {
          let row_index = batch_head * params.query_length + i;
          lse_of[n] = logsumexp[row_index - params.lse_base];
          delta_of[n] = delta[row_index - params.delta_base];
          if (params.lse_residual == 1u) {
            residual_of[n] = logsumexp[params.lse_count + row_index - params.lse_base];
          }
        }
      }

      // 1. Sᵀ and dPᵀ into the scratches.
      {
        ${MATRIX_SCORES}
      }
      workgroupBarrier();

      // 2. P̃ᵀ and dSᵀ for this lane's (row, 8-key group) pairs.
      for (var n = 0u; n < PAIRS; n++) {
        let pair = lane + n * SUBGROUP_SIZE;
        let r = pair / 2u;
        let c0 = (pair % 2u) * 8u;
        let i = row0 + r;
        let lse = lse_of[n];
        let residual = residual_of[n];
        let row_delta = delta_of[n];
        var weights: array<f32, 8>;
        var ds: array<f32, 8>;
        // The pairs' scores and dP read up front, all loads in flight at once.
        var scores: array<f32, 8>;
        var products: array<f32, 8>;
        for (var t = 0u; t < 8u; t++) {
          weights[t] = 0.0;
          ds[t] = 0.0;
          scores[t] = score_scratch[s_base + (c0 + t) * S_STRIDE + r];
          products[t] = dp_scratch[dp_base + (c0 + t) * DP_STRIDE + r];
        }
        // Rows without any allowed key (logsumexp −∞, also past the sequence) take no part. (Bits: a NaN logsumexp
        // must pass, and WGSL leaves comparisons with NaN to the implementation.)
        if (bitcast<u32>(lse) != bitcast<u32>(negative_infinity)) {
          let row_nan = is_nan(lse);
          let bounds = key_bounds(i32(i), sequence);
          let j0 = subgroup_key0 + c0;
#if DROPOUT
          // One draw serves the eight keys (subgroup_key0 + c0 is a multiple of 8).
          let draw = attention_dropout_draw(dropout_stream(), batch_head, i, j0 >> 3u);
          let keep_words = array<vec4<u32>, 2>(attention_dropout_values(draw, 0u), attention_dropout_values(draw, 1u));
#else
          let keep_words = array<vec4<u32>, 2>();
#endif
          // Pairs whose eight keys all lie inside the row's bounds and the valid keys take the form without bound
          // tests; a NaN row takes the general one.
          let inside = !row_nan && j0 + 8u <= valid_end && i32(j0) >= bounds.x && i32(j0 + 7u) <= bounds.y;
          let inputs = PairInputs(lse, residual, row_delta, row_nan, bounds, b, h, i, j0, subgroup * 16u + c0, valid_end);
          if (inside) {
            pair_gradients(inputs, false, &scores, &products, keep_words, &weights, &ds);
          } else {
            pair_gradients(inputs, true, &scores, &products, keep_words, &weights, &ds);
          }
        }
        var ds_halves: array<f16, 8>;
        for (var t = 0u; t < 8u; t++) {
          ds_halves[t] = f16(ds[t]);
          weight_scratch[p_base + (c0 + t) * P_STRIDE + r] = f16(weights[t]);
          gradient_scratch[p_base + (c0 + t) * P_STRIDE + r] = ds_halves[t];
        }
#if STORE_SCORES
        // (Every row of the tile: the slot's rows are padded to whole tiles, its keys to whole blocks.)
        stored_scores[(stored_half_slot(b, h) + i * params.ds_keys + subgroup_key0 + c0) / 8u] = pack_chunk(ds_halves);
#endif
      }
      workgroupBarrier();

      // 3. dV += P̃ᵀ dO and dK += dSᵀ Q.
      {
        ${MATRIX_GRADIENTS}
      }
      // The scratch loads above complete before the next tile's stores.
      workgroupBarrier();
    }
  }

  // dK, then dV, through the score scratch: two lanes per key, half of the dims each.
  let c = lane / 2u;
  let part = lane % 2u;
  let j = subgroup_key0 + c;
  let poisoned = atomicLoad(&key_poisoned[subgroup * 16u + c]) == 1u;
  ${MATRIX_STORE_KEY_GRADIENT}
  workgroupBarrier();
  ${STORE_DK}
  workgroupBarrier();
  ${MATRIX_STORE_VALUE_GRADIENT}
  workgroupBarrier();
  ${STORE_DV}
}
