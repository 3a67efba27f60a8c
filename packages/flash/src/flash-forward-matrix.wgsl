// FlashAttention forward on subgroup matrices (tensor cores through chromium_experimental_subgroup_matrix,
// 16×16×16 f16 → f32): f16 q, k, v; f32 scores, softmax statistics and output accumulators. A workgroup is
// SUBGROUPS subgroups of 32 lanes; each subgroup owns ROW_BLOCKS blocks of 16 consecutive query rows of one
// (batch, head) and keeps their q rows as left matrices and their output as result matrices for the whole key
// loop. Per key tile of BLOCK_N keys (k and v staged in workgroup memory as f16, head dims zero-padded to the
// compiled multiple of 16):
//   1. S = Q Kᵀ on the matrices, stored to the subgroup's f32 score scratch;
//   2. two lanes per row take half of the row's scores each: scale, softcap, masks, bounds (flash-common.wgsl),
//      the row maximum (a subgroup shuffle joins the two lanes), P = exp(S − m) as f16 into the subgroup's
//      probability scratch (dropped keys: 0) and the partial row sums l;
//   3. O += P V on the matrices.
// The output stays in the matrices: a row's reference maximum m only moves when the tile's maximum exceeds it by
// more than RESCALE_MARGIN (then P ≤ e^RESCALE_MARGIN, safe in f16), and only then does the workgroup take its
// output through the score scratch to rescale the rows that moved (lazy rescaling; softmax is exact for any
// reference m as long as l uses the same one).
// Subgroup matrices may take any offset here (the uniformity diagnostic is off): every subgroup executes each
// matrix builtin in uniform control flow, but its offsets depend on its subgroup index.
// NaN inputs as in flash-forward-tiled.wgsl: a NaN score of an allowed pair makes the row NaN; NaN values of v are
// kept out of the tile and flagged per key, and the output dims of rows that may attend such a key become NaN.
// Writes out and logsumexp = m + log l (−∞ and out = 0 for a row without any allowed key) and, with
// params.lse_residual, the logsumexp rounding residual.
// Workgroups take their (row block, head, batch) in plane-chunked order, the heaviest row blocks first under a banded
// mask (flash-common.wgsl's plane_chunked_workgroup). In workgroups of several subgroups each subgroup skips steps 1–3
// for the key tiles none of its rows attends (a causal mask's last tiles for the lower rows).

const SUBGROUP_SIZE: u32 = 32u;
const SUBGROUPS: u32 = ${SUBGROUPS}u;
const ROW_BLOCKS: u32 = ${ROW_BLOCKS}u;
const BLOCK_N: u32 = ${BLOCK_N}u;
const HEAD_DIM_QK: u32 = ${HEAD_DIM_QK}u;
const HEAD_DIM_V: u32 = ${HEAD_DIM_V}u;
const THREADS: u32 = SUBGROUPS * SUBGROUP_SIZE;
const SUBGROUP_ROWS: u32 = ROW_BLOCKS * 16u;
// Each lane: half of one row's keys per tile and half of its output dims at the end.
const COLUMNS_PER_LANE: u32 = BLOCK_N / 2u;
// Dropout draws per lane, row block and tile: one per eight keys.
const LANE_DRAWS: u32 = COLUMNS_PER_LANE / 8u;
const DIMS_PER_LANE: u32 = HEAD_DIM_V / 2u;
const NAN_WORDS: u32 = (DIMS_PER_LANE + 31u) / 32u;
// Bit pairs of a lane's dims that a value of v kept out of the products makes special for a row: bit 1 (first
// word set) for NaN or +∞, bit 2 (second set) for NaN or −∞; both: the output is NaN.
const SPECIAL_POSITIVE: u32 = 1u;
const SPECIAL_NEGATIVE: u32 = 2u;
// Row strides of the tiles and scratches (elements). The score scratch also carries the output (rescaling, end).
const K_STRIDE: u32 = HEAD_DIM_QK + 8u;
const V_STRIDE: u32 = HEAD_DIM_V + 8u;
const S_STRIDE: u32 = max(BLOCK_N, HEAD_DIM_V) + 1u;
// The probability scratch also stages the q rows before the loop. Rows 16 wide take 2 elements of padding (the f16
// stores of step 2 meet 2-way bank conflicts instead of 4-way), wider ones keep 8 (at 2 the D32 and D64 forwards ran
// 1–3% slower: bench notes, entry 40).
const P_STRIDE: u32 = max(BLOCK_N, HEAD_DIM_QK) + select(8u, 2u, max(BLOCK_N, HEAD_DIM_QK) == 16u);
const RESCALE_MARGIN: f32 = 8.0;

// With Q_VEC8 / O_VEC8 (rows of contiguous dims, offsets and strides multiples of 8 elements, head dim a multiple of
// 8) q is read and out written as chunks of 8 f16 (16 bytes) instead of element by element: at B32 H8 N500 D16 on an
// H100 the element-wise q loads and out stores took 5 and 6 µs of the forward's 181 (bench notes, entry 23).
#if Q_VEC8
@group(0) @binding(5) var<storage, read> q: array<vec4<u32>>;
#else
@group(0) @binding(5) var<storage, read> q: array<f16>;
#endif
@group(0) @binding(6) var<storage, read> k: array<f16>;
@group(0) @binding(7) var<storage, read> v: array<f16>;
#if O_VEC8
@group(0) @binding(8) var<storage, read_write> out: array<vec4<u32>>;
#else
@group(0) @binding(8) var<storage, read_write> out: array<f16>;
#endif
@group(0) @binding(9) var<storage, read_write> logsumexp: array<f32>;

var<workgroup> score_scratch: array<f32, SUBGROUPS * SUBGROUP_ROWS * S_STRIDE>;
var<workgroup> probability_scratch: array<f16, SUBGROUPS * SUBGROUP_ROWS * P_STRIDE>;
#if DIRECT_KV
// k and v are the padded copies of padded-key-values.ts ([B, Hkv, rows, HEAD_DIM] with whole tiles of zero-padded
// rows per head, v's NaN and infinite values copied as 0); nan_flags records those values, 32 rows per group of
// 1 + 64 · V_DIM_WORDS words: the rows that have one, then per row V_DIM_WORDS words of dims holding NaN or +∞
// and V_DIM_WORDS of dims holding NaN or −∞.
@group(0) @binding(10) var<storage, read> nan_flags: array<u32>;
const V_DIM_WORDS: u32 = (HEAD_DIM_V + 31u) / 32u;
const FLAG_GROUP_WORDS: u32 = 1u + 64u * V_DIM_WORDS;

// Whether some of the BLOCK_N rows of the padded v from `first_row` (a multiple of BLOCK_N) has a special value.
fn tile_has_nan(first_row: u32) -> bool {
  var found = 0u;
  for (var row = first_row; row < first_row + BLOCK_N; row += 32u) {
    let count = min(BLOCK_N, 32u);
    let bits = select((1u << count) - 1u, 0xffffffffu, count == 32u) << (row % 32u);
    found |= nan_flags[(row / 32u) * FLAG_GROUP_WORDS] & bits;
  }
  return found != 0u;
}

fn row_has_nan(row: u32) -> bool {
  return (nan_flags[(row / 32u) * FLAG_GROUP_WORDS] & (1u << (row % 32u))) != 0u;
}

// SPECIAL_POSITIVE | SPECIAL_NEGATIVE bits of v[row, dim] (0: finite).
fn value_special(row: u32, dim: u32) -> u32 {
  let words = (row / 32u) * FLAG_GROUP_WORDS + 1u + (row % 32u) * 2u * V_DIM_WORDS + dim / 32u;
  let positive = (nan_flags[words] >> (dim % 32u)) & 1u;
  let negative = (nan_flags[words + V_DIM_WORDS] >> (dim % 32u)) & 1u;
  return positive * SPECIAL_POSITIVE + negative * SPECIAL_NEGATIVE;
}
#else
// Two buffers each: the next tile is staged while the lanes work on this one's scores.
var<workgroup> k_tile: array<f16, 2u * BLOCK_N * K_STRIDE>;
var<workgroup> v_tile: array<f16, 2u * BLOCK_N * V_STRIDE>;
// In the tile's buffer: v_nan[c] == tile + 1: key c of the tile has a NaN in v; tile_v_nan == tile + 1: some key has.
var<workgroup> v_nan: array<atomic<u32>, 2u * BLOCK_N>;
var<workgroup> tile_v_nan: array<atomic<u32>, 2>;
#endif
// == tile + 1 when some row of the workgroup moved its reference maximum in this tile.
var<workgroup> rescale_tile: u32;
var<workgroup> sequence_shared: Sequence;

#if !DIRECT_KV
// Stages key tile `tile` (k and v as f16, zero past the valid keys and head dims) into buffer tile % 2.
fn stage_tile(tile: u32, lid: u32, sequence: Sequence, k_base: u32, v_base: u32) {
  let key0 = tile * BLOCK_N;
  let buffer = tile % 2u;
  for (var e = lid; e < BLOCK_N * HEAD_DIM_QK; e += THREADS) {
    let c = e / HEAD_DIM_QK;
    let d = e % HEAD_DIM_QK;
    let j = key0 + c;
    var value = f16(0.0);
    if (j < sequence.k_valid && d < params.head_dim_qk) {
      value = k[k_base + (sequence.k_start + j) * params.k_seq + d * params.k_dim];
    }
    k_tile[(buffer * BLOCK_N + c) * K_STRIDE + d] = value;
  }
  for (var e = lid; e < BLOCK_N * HEAD_DIM_V; e += THREADS) {
    let c = e / HEAD_DIM_V;
    let d = e % HEAD_DIM_V;
    let j = key0 + c;
    var value = f16(0.0);
    if (j < sequence.k_valid && d < params.head_dim_v) {
      value = v[v_base + (sequence.k_start + j) * params.v_seq + d * params.v_dim];
      if (is_nan(f32(value))) {
        atomicStore(&v_nan[buffer * BLOCK_N + c], tile + 1u);
        atomicStore(&tile_v_nan[buffer], tile + 1u);
        value = f16(0.0);
      }
    }
    v_tile[(buffer * BLOCK_N + c) * V_STRIDE + d] = value;
  }
}
#endif

@compute @workgroup_size(THREADS)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) grid_id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  // Heaviest row blocks first under a causal mask or a right-bounded window (flash-common.wgsl). (Entry 21 of the
  // bench notes kept one-subgroup workgroups in the plain order after bimodal runs; timed with the sampler's heater,
  // entry 23, the reversed order runs D64 as fast and the one-subgroup D16 causal forward 0.114–0.120 ms against
  // 0.126–0.128.)
  let wid = plane_chunked_workgroup(grid_id, groups, later_rows_heavier());
  let block_rows = SUBGROUPS * SUBGROUP_ROWS;
  let subgroup = lid / SUBGROUP_SIZE;
  let lane = lid % SUBGROUP_SIZE;
  let local_row = lane / 2u;
  let part = lane % 2u;
  let b = params.batch_base + wid.z;
  let h = params.head_base + wid.y;
  let kv_head = h / (params.q_heads / params.kv_heads);
  let row0 = params.row_base + wid.x * block_rows;
  let subgroup_row0 = row0 + subgroup * SUBGROUP_ROWS;
  let batch_head = b * params.q_heads + h;
  if (lid == 0u) {
    sequence_shared = load_sequence(b);
  }
  let sequence = workgroupUniformLoad(&sequence_shared);
  let negative_infinity = params.negative_infinity;
  if (row0 >= sequence.q_len) {
    // Packed varlen: rows past this sequence's end get logsumexp −∞ (like the reference).
    for (var r = lid; r < block_rows; r += THREADS) {
      if (row0 + r < params.row_end) {
        logsumexp[batch_head * params.query_length + row0 + r - params.lse_base] = negative_infinity;
      }
    }
    return;
  }
  let dqk = params.head_dim_qk;
  let dv = params.head_dim_v;
  let row_limit = min(sequence.q_len, params.row_end);
  let row_last = min(row0 + block_rows, row_limit) - 1u;
  // The key tiles some row of this workgroup may attend.
  let attended = attended_key_tiles(row0, row_last, sequence, BLOCK_N);
  let tile_begin = attended.x;
  let tile_end = attended.y;
  // The key tiles some row of this subgroup may attend (a subgroup-uniform range): under a causal mask the subgroups
  // of lower rows stop before the workgroup's last tiles, and skip their products and scores there.
  var subgroup_tiles = vec2<u32>(0u, 0u);
  if (subgroup_row0 < row_limit) {
    subgroup_tiles = attended_key_tiles(subgroup_row0, min(subgroup_row0 + SUBGROUP_ROWS, row_limit) - 1u, sequence, BLOCK_N);
  }
  let s_base = subgroup * SUBGROUP_ROWS * S_STRIDE;
  let p_base = subgroup * SUBGROUP_ROWS * P_STRIDE;
  let k_base = params.k_offset + b * params.k_batch + kv_head * params.k_head;
  let v_base = params.v_offset + b * params.v_batch + kv_head * params.v_head;
#if !DIRECT_KV
  if (tile_begin < tile_end) {
    stage_tile(tile_begin, lid, sequence, k_base, v_base);
  }
#endif

  // The subgroup's q rows (zero past the rows this dispatch computes), staged in its probability scratch.
  ${STAGE_Q}
  workgroupBarrier();
  // The q rows as left matrices q_<block>_<dims>, the output as result matrices o_<block>_<dims> (matrix-blocks.ts).
  ${MATRIX_DECLARATIONS}
  ${MATRIX_LOAD_QUERY}

  // This lane's row in each row block: bounds (inactive rows: empty), reference maximum, partial sum, flags.
  var lo: array<i32, ROW_BLOCKS>;
  var hi: array<i32, ROW_BLOCKS>;
  var m: array<f32, ROW_BLOCKS>;
  var l: array<f32, ROW_BLOCKS>;
  var scale: array<f32, ROW_BLOCKS>;
  var poisoned: array<bool, ROW_BLOCKS>;
  // Per row block: NAN_WORDS words of SPECIAL_POSITIVE dims, then NAN_WORDS of SPECIAL_NEGATIVE ones.
  var special_bits: array<u32, ROW_BLOCKS * 2u * NAN_WORDS>;
  for (var r = 0u; r < ROW_BLOCKS; r++) {
    let i = subgroup_row0 + r * 16u + local_row;
    m[r] = negative_infinity;
    l[r] = 0.0;
    poisoned[r] = false;
    lo[r] = 1;
    hi[r] = 0;
    if (i < row_limit) {
      let bounds = key_bounds(i32(i), sequence);
      lo[r] = bounds.x;
      hi[r] = bounds.y;
    }
    for (var w = 0u; w < 2u * NAN_WORDS; w++) {
      special_bits[r * 2u * NAN_WORDS + w] = 0u;
    }
  }

#if DIRECT_KV
  // Key tiles a row-broadcast bool mask removes whole are skipped, those it allows whole read no mask
  // (flash-common.wgsl; staged tiles always run and read the mask).
  let skips = mark_live_key_tiles(b, h, tile_begin * BLOCK_N, tile_end - tile_begin, BLOCK_N, lid, THREADS);
#if MASK_BOOL
  mark_partial_key_tiles(b, h, tile_begin * BLOCK_N, tile_end - tile_begin, BLOCK_N, lid, THREADS);
#endif
#endif
  for (var tile = tile_begin; tile < tile_end; tile++) {
#if DIRECT_KV
    if (skips && !key_tile_live(tile - tile_begin)) {
      continue;
    }
#if MASK_BOOL
    let whole_tile = key_tile_whole(tile - tile_begin);
#endif
#endif
    let key0 = tile * BLOCK_N;
    let tile_site = (tile + 1u) * 256u;
    // (One subgroup: its tiles are the workgroup's, and the constant test folds away; a runtime one cost the D64
    // forward 4% on the H100: bench notes, entry 22.)
    let subgroup_active = SUBGROUPS == 1u || (tile >= subgroup_tiles.x && tile < subgroup_tiles.y);
#if DIRECT_KV
    // The tile's first rows in the padded k and v (the same row index in both, and in nan_flags).
    let k_row = k_base + key0 * HEAD_DIM_QK;
    let v_row = v_base + key0 * HEAD_DIM_V;
    let tile_row = v_row / HEAD_DIM_V;
#else
    // This tile's buffers (staged before the loop or during the previous tile, visible since its last barrier).
    let buffer = tile % 2u;
    let k_tile_base = buffer * BLOCK_N * K_STRIDE;
    let v_tile_base = buffer * BLOCK_N * V_STRIDE;
#endif

#if DROPOUT
    // This lane's dropout draws for the tile, computed before the products so that the integer work overlaps them
    // (the lane's first key is a multiple of 8).
    var draws: array<vec4<u32>, ROW_BLOCKS * LANE_DRAWS>;
    for (var r = 0u; r < ROW_BLOCKS && subgroup_active; r++) {
      let i = subgroup_row0 + r * 16u + local_row;
      for (var c8 = 0u; c8 < LANE_DRAWS; c8++) {
        draws[r * LANE_DRAWS + c8] = attention_dropout_draw(dropout_stream(), batch_head, i, (key0 + part * COLUMNS_PER_LANE) / 8u + c8);
      }
    }
#endif

    // 1. S = Q Kᵀ into the score scratch.
    if (subgroup_active) {
      ${MATRIX_SCORES}
    }
    workgroupBarrier();

    // 2. This lane's half of its rows: scores, the reference maximum, P and the partial sums.
    let column0 = key0 + part * COLUMNS_PER_LANE;
    for (var r = 0u; r < ROW_BLOCKS; r++) {
      scale[r] = 1.0;
      let i = subgroup_row0 + r * 16u + local_row;
      let lane_scores = s_base + (r * 16u + local_row) * S_STRIDE + part * COLUMNS_PER_LANE;
      var scores: array<f32, COLUMNS_PER_LANE>;
      var tile_max = negative_infinity;
      // An inactive subgroup skips the scores but its lanes meet at the shuffle (subgroup-uniform flow: the if
      // reconverges, a loop that a lane leaves early would not).
      if (subgroup_active) {
        // The lane's scores read up front, all loads in flight at once.
        var raw: array<f32, COLUMNS_PER_LANE>;
        for (var c = 0u; c < COLUMNS_PER_LANE; c++) {
          raw[c] = score_scratch[lane_scores + c];
        }
        for (var c4 = 0u; c4 < COLUMNS_PER_LANE / 4u; c4++) {
          let j4 = column0 + c4 * 4u;
          var capped: vec4<f32>;
          for (var t = 0u; t < 4u; t++) {
            capped[t] = capped_score(raw[c4 * 4u + t]).x;
          }
          // Four keys' masks at once where all four exist (the others are out of every row's bounds).
          var masked = capped;
#if DIRECT_KV
#if MASK_BOOL
          // None where a row-broadcast bool mask allows every key of the tile.
          if (whole_tile) {
          } else
#endif
#endif
          if (j4 + 3u < params.key_length) {
            masked = masked_scores4(capped, b, h, i, j4);
          } else {
            for (var t = 0u; t < 4u; t++) {
              if (j4 + t < params.key_length) {
                masked[t] = masked_score(capped[t], b, h, i, j4 + t);
              }
            }
          }
          for (var t = 0u; t < 4u; t++) {
            let j = j4 + t;
            var score = negative_infinity;
            if (i32(j) >= lo[r] && i32(j) <= hi[r]) {
              score = masked[t];
              if (is_nan(score)) {
                poisoned[r] = true;
                score = negative_infinity;
              }
            }
            scores[c4 * 4u + t] = score;
            tile_max = max(tile_max, score);
          }
        }
      }
      tile_max = max(tile_max, subgroupShuffleXor(tile_max, 1u));
      // The reference maximum moves only when the tile's exceeds it by more than the margin (or on the row's first
      // allowed tile); its output is then rescaled below.
      if (tile_max > m[r] + RESCALE_MARGIN) {
        if (m[r] != negative_infinity) {
          scale[r] = exp(m[r] - tile_max);
          rescale_tile = tile + 1u;
        }
        m[r] = tile_max;
      }
      let reference = m[r];
      var sum = 0.0;
      let lane_probabilities = p_base + (r * 16u + local_row) * P_STRIDE + part * COLUMNS_PER_LANE;
      // (An inactive subgroup's tile_max is −∞: its reference maximum and sums stay as they are.)
      if (subgroup_active) {
        for (var c4 = 0u; c4 < COLUMNS_PER_LANE / 4u; c4++) {
          var p: vec4<f32>;
          for (var t = 0u; t < 4u; t++) {
            let score = scores[c4 * 4u + t];
            // score = −∞ (masked) gives 0, also when the reference is still −∞.
            p[t] = select(exp(score - reference), 0.0, score == negative_infinity);
          }
          sum += p.x + p.y + p.z + p.w;
#if DROPOUT
          let words = attention_dropout_values(draws[r * LANE_DRAWS + c4 / 2u], c4 & 1u);
          // Dropped keys weigh 0; the kept ones' 1 / (1 − p) is applied to the output at the end (P stays small).
          p = select(vec4<f32>(0.0), p, words >= vec4<u32>(params.dropout_threshold));
#endif
          for (var t = 0u; t < 4u; t++) {
            probability_scratch[lane_probabilities + c4 * 4u + t] = f16(p[t]);
          }
        }
      }
      l[r] = l[r] * scale[r] + sum;
    }
    // The next tile into the other buffers: every thread finished the previous tile's products with them before the
    // barrier above.
#if !DIRECT_KV
    if (tile + 1u < tile_end) {
      stage_tile(tile + 1u, lid, sequence, k_base, v_base);
    }
#endif
    // Uniform for the workgroup (every lane that moved its maximum wrote the same value).
    if (workgroupUniformLoad(&rescale_tile) == tile + 1u) {
      ${MATRIX_RESCALE_STORE}
      workgroupBarrier();
      for (var r = 0u; r < ROW_BLOCKS; r++) {
        let lane_outputs = s_base + (r * 16u + local_row) * S_STRIDE + part * DIMS_PER_LANE;
        for (var d = 0u; d < DIMS_PER_LANE; d++) {
          score_scratch[lane_outputs + d] *= scale[r];
        }
      }
      workgroupBarrier();
      ${MATRIX_RESCALE_LOAD}
      // The loads above complete before the next tile's scores overwrite the scratch.
      workgroupBarrier();
    }

    // 3. O += P V.
    if (subgroup_active) {
      ${MATRIX_PRODUCTS}
    }
#if DIRECT_KV
    if (tile_has_nan(tile_row)) {
#else
    if (atomicLoad(&tile_v_nan[buffer]) == tile + 1u) {
#endif
      // Rare: some keys' v rows have NaN (or, direct, infinite) values, kept out of the products. Each lane marks
      // its output dims that such a key makes special for its rows that may attend it: NaN for NaN; ±∞ for ±∞ (the
      // weight of an attended key is positive), NaN where the key is dropped (0 · ∞) or both infinities meet.
      for (var c = 0u; c < BLOCK_N; c++) {
#if DIRECT_KV
        if (!row_has_nan(tile_row + c)) {
          continue;
        }
#else
        if (atomicLoad(&v_nan[buffer * BLOCK_N + c]) != tile + 1u) {
          continue;
        }
        let v_address = v_base + (sequence.k_start + key0 + c) * params.v_seq;
#endif
        let j = key0 + c;
        for (var r = 0u; r < ROW_BLOCKS; r++) {
          let i = subgroup_row0 + r * 16u + local_row;
          let masked = i32(j) < lo[r] || i32(j) > hi[r] || masked_score(0.0, b, h, i, j) == negative_infinity;
          if (masked) {
            continue;
          }
#if DROPOUT
          let kept = attention_dropout_words(dropout_stream(), batch_head, i, j >> 2u)[j & 3u] >= params.dropout_threshold;
#else
          let kept = true;
#endif
          for (var d = 0u; d < DIMS_PER_LANE; d++) {
            let dim = part * DIMS_PER_LANE + d;
            if (dim >= dv) {
              break;
            }
#if DIRECT_KV
            var special = value_special(tile_row + c, dim);
#else
            var special = select(0u, SPECIAL_POSITIVE | SPECIAL_NEGATIVE, is_nan(f32(v[v_address + dim * params.v_dim])));
#endif
            if (special != 0u && !kept) {
              special = SPECIAL_POSITIVE | SPECIAL_NEGATIVE;
            }
            special_bits[r * 2u * NAN_WORDS + d / 32u] |= (special & SPECIAL_POSITIVE) << (d % 32u);
            special_bits[(r * 2u + 1u) * NAN_WORDS + d / 32u] |= ((special & SPECIAL_NEGATIVE) >> 1u) << (d % 32u);
          }
        }
      }
    }
  }

  // The output through the score scratch; each lane writes half of its rows' dims.
  workgroupBarrier();
  ${MATRIX_STORE_OUTPUT}
  workgroupBarrier();
  for (var r = 0u; r < ROW_BLOCKS; r++) {
    let i = subgroup_row0 + r * 16u + local_row;
    let total = l[r] + subgroupShuffleXor(l[r], 1u);
    let other_poisoned = subgroupShuffleXor(u32(poisoned[r]), 1u) == 1u;
    let row_poisoned = poisoned[r] || other_poisoned;
    if (i < row_limit) {
      let o_base = params.o_offset + b * params.o_batch + h * params.o_head + (sequence.q_start + i) * params.o_seq;
      let lane_outputs = s_base + (r * 16u + local_row) * S_STRIDE + part * DIMS_PER_LANE;
      var inverse = select(0.0, 1.0 / total, total > 0.0);
#if DROPOUT
      inverse *= params.dropout_scale;
#endif
      // Eight dims at a time (DIMS_PER_LANE is a multiple of 8; with O_VEC8 dv is too).
      for (var d8 = 0u; d8 < DIMS_PER_LANE; d8 += 8u) {
        if (part * DIMS_PER_LANE + d8 >= dv) {
          break;
        }
        var values: array<f16, 8>;
        for (var t = 0u; t < 8u; t++) {
          let d = d8 + t;
          var value = f16(score_scratch[lane_outputs + d] * inverse);
          let positive = (special_bits[r * 2u * NAN_WORDS + d / 32u] >> (d % 32u)) & 1u;
          let negative = (special_bits[(r * 2u + 1u) * NAN_WORDS + d / 32u] >> (d % 32u)) & 1u;
          if (row_poisoned || positive + negative == 2u) {
            value = nan_stored();
          } else if (positive + negative == 1u) {
            // ±∞ in f16 bits, through a uniform zero so that no compiler folds it.
            value = bitcast<vec2<f16>>(select(0xfc00u, 0x7c00u, positive == 1u) | params.opaque_zero).x;
          }
          values[t] = value;
        }
#if O_VEC8
        out[(o_base + part * DIMS_PER_LANE + d8) / 8u] = pack_chunk(values);
#else
        for (var t = 0u; t < 8u; t++) {
          let dim = part * DIMS_PER_LANE + d8 + t;
          if (dim < dv) {
            out[o_base + dim * params.o_dim] = values[t];
          }
        }
#endif
      }
      if (part == 0u) {
        let lse_index = batch_head * params.query_length + i - params.lse_base;
        let log_sum = log(total);
        let lse = m[r] + log_sum;
        logsumexp[lse_index] = select(select(negative_infinity, lse, total > 0.0), nan_f32(), row_poisoned);
        if (params.lse_residual == 1u) {
          // See flash-forward-tiled.wgsl: the XOR with a uniform zero keeps compilers from folding it to 0.
          let stored = bitcast<f32>(bitcast<u32>(lse) ^ params.opaque_zero);
          logsumexp[params.lse_count + lse_index] = select(0.0, (m[r] - stored) + log_sum, total > 0.0);
        }
      }
    } else if (i < params.row_end && part == 0u) {
      logsumexp[batch_head * params.query_length + i - params.lse_base] = negative_infinity;
    }
  }
}
