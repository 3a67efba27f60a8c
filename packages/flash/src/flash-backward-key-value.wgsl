// FlashAttention-2 backward for dK and dV: one workgroup per tile of THREADS · ROWS keys of one (batch, kv head),
// each thread owning ROWS consecutive keys (register tiling: every staged Q/dO element serves ROWS keys). It loops over the query heads that share the kv head (GQA) and over the query tiles that may
// attend its keys (others are skipped), stages Q, dO, logsumexp and delta in workgroup memory (and the dropout keep
// bits of its keys, one dropout draw per row and 8 keys), recomputes P = exp(score − logsumexp) and accumulates dV += P̃ᵀ dO and
// dK += dSᵀ Q · scale. Each key's gradient is summed by one thread in a fixed order: deterministic. A key that a
// row with a NaN logsumexp may attend gets NaN dK and dV; NaN query rows are kept out of the Q tile (they are
// such rows), so that the zero dS of a masked pair cannot spread them.
//
// A dispatch covers the keys [key_base, key_end) (all of them unless split: binding-chunks.ts; split points are
// multiples of the workgroup's keys) and the query rows [row_base, row_end). When the query rows of one kv head do
// not fit a storage binding, the recording splits them: each dispatch covers the query heads
// [group_first, group_first + group_count) of the group and a range of rows, in the unsplit order (heads, then
// rows). A range may end inside a query tile: the tile's rows outside [row_base, row_end) are staged like rows
// past the sequence (q and dO zero, logsumexp −∞) and take no part, so each row is summed by exactly one
// dispatch. This source is then compiled
// with ${GRADIENT_T} = f32: dk and dv are f32 scratch holding the running sums, loaded at the start when
// params.kv_partial is 1 (so the sums continue exactly), and flash-backward-finish.wgsl writes them out.

override BLOCK_M: u32 = 16u;
override THREADS: u32 = 64u;
// Keys per thread (the forward's rows per thread).
const ROWS: u32 = ${ROWS}u;
const HEAD_DIM_QK: u32 = ${HEAD_DIM_QK}u;
const HEAD_DIM_V: u32 = ${HEAD_DIM_V}u;
const QK4: u32 = HEAD_DIM_QK / 4u;
const V4: u32 = HEAD_DIM_V / 4u;

// Row buffers as array<f32 or f16>, or as array<vec4<f32>> where their rows allow (vec4-loaders.ts).
@group(0) @binding(5) var<storage, read> q: array<${Q_ELEMENT}>;
@group(0) @binding(6) var<storage, read> k: array<${K_ELEMENT}>;
@group(0) @binding(7) var<storage, read> v: array<${V_ELEMENT}>;
@group(0) @binding(8) var<storage, read> grad_out: array<${GRAD_OUT_ELEMENT}>;
@group(0) @binding(9) var<storage, read> logsumexp: array<f32>;
@group(0) @binding(10) var<storage, read> delta: array<f32>;
@group(0) @binding(11) var<storage, read_write> dk: array<${GRADIENT_T}>;
@group(0) @binding(12) var<storage, read_write> dv: array<${GRADIENT_T}>;

var<workgroup> q_tile: array<vec4<f32>, BLOCK_M * QK4>;
var<workgroup> do_tile: array<vec4<f32>, BLOCK_M * V4>;
var<workgroup> lse_tile: array<f32, BLOCK_M>;
var<workgroup> residual_tile: array<f32, BLOCK_M>;
var<workgroup> delta_tile: array<f32, BLOCK_M>;
var<workgroup> sequence_shared: Sequence;
#if DROPOUT
// The workgroup's THREADS · ROWS keys (from a multiple of that, with 64 threads a multiple of 32) in words of 32.
override KEEP_WORDS: u32 = THREADS * ROWS / 32u;
// The dropout keep bits of the staged rows × the workgroup's keys: bit c of keep_bits[r · KEEP_WORDS + w] is key
// key0 + 32 · w + c of row r (flash-tiles.ts counts them in the rows' storage).
var<workgroup> keep_bits: array<u32, BLOCK_M * KEEP_WORDS>;
#endif

// load_q4, load_k4, ... (vec4-loaders.ts): elements d..d+3 of a row, zero at and past `dim`.
${VEC4_LOADERS}
@compute @workgroup_size(THREADS)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
  // Global indices: a chunked dispatch (binding-chunks.ts) covers batch entries and kv heads from its bases.
  let b = params.batch_base + wid.z;
  let kv_head = params.head_base + wid.y;
  let key0 = params.key_base + wid.x * THREADS * ROWS;
  let first_key = key0 + lid * ROWS;
  if (lid == 0u) {
    sequence_shared = load_sequence(b);
  }
  let sequence = workgroupUniformLoad(&sequence_shared);
  // This dispatch's keys, and those of them that may be attended.
  let key_end = min(sequence.k_len, params.key_end);
  let valid_end = min(sequence.k_valid, params.key_end);
  if (key0 >= key_end) {
    return;
  }
  let dqk = params.head_dim_qk;
  let dvd = params.head_dim_v;
  let negative_infinity = params.negative_infinity;
  let group = params.q_heads / params.kv_heads;

  // Rows that may attend some key of this workgroup.
  let attended = attended_query_tiles(key0, THREADS * ROWS, valid_end, sequence, BLOCK_M);
  var tile_begin = attended.x;
  var tile_end = attended.y;
  // This dispatch's query rows [row_base, row_limit) (all of them unless split; a split point may fall inside a
  // tile, whose other rows are then staged as absent) and the tiles holding them.
  let row_limit = min(sequence.q_len, params.row_end);
  tile_begin = max(tile_begin, params.row_base / BLOCK_M);
  tile_end = min(tile_end, (params.row_end + BLOCK_M - 1u) / BLOCK_M);

  // This thread's keys [first_key, last_key] (valid ones only; none: last_key < first_key).
  let last_key = i32(min(first_key + ROWS, valid_end)) - 1;
  var k_rows: array<vec4<f32>, ROWS * QK4>;
  var v_rows: array<vec4<f32>, ROWS * V4>;
  var dk_acc: array<vec4<f32>, ROWS * QK4>;
  var dv_acc: array<vec4<f32>, ROWS * V4>;
  var poisoned: array<bool, ROWS>;
  for (var t = 0u; t < ROWS; t++) {
    poisoned[t] = false;
    let j = first_key + t;
    for (var d4 = 0u; d4 < QK4; d4++) {
      dk_acc[t * QK4 + d4] = vec4<f32>(0.0);
      k_rows[t * QK4 + d4] = vec4<f32>(0.0);
    }
    for (var d4 = 0u; d4 < V4; d4++) {
      dv_acc[t * V4 + d4] = vec4<f32>(0.0);
      v_rows[t * V4 + d4] = vec4<f32>(0.0);
    }
    if (params.kv_partial == 1u && j < key_end) {
      // Continue the sums of the previous dispatches (f32 scratch, see the header); NaN marks a poisoned key.
      let dk_address = params.dk_offset + b * params.dk_batch + kv_head * params.dk_head + (sequence.k_start + j) * params.dk_seq;
      let dv_address = params.dv_offset + b * params.dv_batch + kv_head * params.dv_head + (sequence.k_start + j) * params.dv_seq;
      for (var d = 0u; d < dqk; d++) {
        let value = f32(dk[dk_address + d * params.dk_dim]);
        poisoned[t] = poisoned[t] || is_nan(value);
        dk_acc[t * QK4 + d / 4u][d % 4u] = value;
      }
      for (var d = 0u; d < dvd; d++) {
        let value = f32(dv[dv_address + d * params.dv_dim]);
        poisoned[t] = poisoned[t] || is_nan(value);
        dv_acc[t * V4 + d / 4u][d % 4u] = value;
      }
    }
    if (j < valid_end) {
      let k_address = params.k_offset + b * params.k_batch + kv_head * params.k_head + (sequence.k_start + j) * params.k_seq;
      let v_address = params.v_offset + b * params.v_batch + kv_head * params.v_head + (sequence.k_start + j) * params.v_seq;
      for (var d4 = 0u; d4 < QK4; d4++) {
        k_rows[t * QK4 + d4] = load_k4(k_address, d4 * 4u, dqk, params.k_dim);
      }
      for (var d4 = 0u; d4 < V4; d4++) {
        v_rows[t * V4 + d4] = load_v4(v_address, d4 * 4u, dvd, params.v_dim);
      }
    }
  }

  // Nothing to add where a bool mask that broadcasts over rows and heads removes every key of the block.
  if (params.mask_head == 0u && mark_live_key_tiles(b, 0u, key0, 1u, THREADS * ROWS, lid, THREADS)) {
    tile_end = tile_begin;
  }
  for (var head_in_group = params.group_first; head_in_group < params.group_first + params.group_count; head_in_group++) {
    let h = kv_head * group + head_in_group;
    let batch_head = b * params.q_heads + h;
    let q_base = params.q_offset + b * params.q_batch + h * params.q_head;
    let g_base = params.g_offset + b * params.g_batch + h * params.g_head;
    for (var tile = tile_begin; tile < tile_end; tile++) {
      let row0 = tile * BLOCK_M;
      workgroupBarrier();
      for (var e = lid; e < BLOCK_M * QK4; e += THREADS) {
        let i = row0 + e / QK4;
        var value = vec4<f32>(0.0);
        if (i >= params.row_base && i < row_limit) {
          value = without_nan4(load_q4(q_base + (sequence.q_start + i) * params.q_seq, (e % QK4) * 4u, dqk, params.q_dim));
        }
        q_tile[e] = value;
      }
      for (var e = lid; e < BLOCK_M * V4; e += THREADS) {
        let i = row0 + e / V4;
        var value = vec4<f32>(0.0);
        if (i >= params.row_base && i < row_limit) {
          value = load_grad_out4(g_base + (sequence.q_start + i) * params.g_seq, (e % V4) * 4u, dvd, params.g_dim);
        }
        do_tile[e] = value;
      }
      for (var r = lid; r < BLOCK_M; r += THREADS) {
        let i = row0 + r;
        var lse = negative_infinity;
        var row_delta = 0.0;
        var residual = 0.0;
        if (i >= params.row_base && i < row_limit) {
          // Rows of the logsumexp and delta bindings (row-stats.ts).
          let row_index = batch_head * params.query_length + i;
          lse = logsumexp[row_index - params.lse_base];
          row_delta = delta[row_index - params.delta_base];
          if (params.lse_residual == 1u) {
            residual = logsumexp[params.lse_count + row_index - params.lse_base];
          }
        }
        lse_tile[r] = lse;
        residual_tile[r] = residual;
        delta_tile[r] = row_delta;
      }
#if DROPOUT
      // One dropout draw per (row, 8 keys) for the whole workgroup (drawn by each thread, a draw would be repeated by
      // every thread whose keys share its octet). Rows outside the dispatch's rows are not drawn (they take no part).
      for (var e = lid; e < BLOCK_M * KEEP_WORDS; e += THREADS) {
        let r = e % BLOCK_M;
        let i = row0 + r;
        var bits = 0u;
        if (i >= params.row_base && i < row_limit) {
          for (var o = 0u; o < 4u; o++) {
            let octet = (key0 >> 3u) + 4u * (e / BLOCK_M) + o;
            bits |= dropout_keep_octet(attention_dropout_draw(dropout_stream(), batch_head, i, octet)) << (8u * o);
          }
        }
        keep_bits[r * KEEP_WORDS + e / BLOCK_M] = bits;
      }
#endif
      workgroupBarrier();
      for (var r = 0u; r < BLOCK_M; r++) {
        let i = row0 + r;
        let lse = lse_tile[r];
        let row_nan = is_nan(lse);
        let bounds = key_bounds(i32(i), sequence);
        // Skip rows without any allowed key, and rows none of this thread's keys may be attended by.
        if (lse == negative_infinity || last_key < max(bounds.x, i32(first_key)) || i32(first_key) > bounds.y) {
          continue;
        }
        // The same summation order as the forward's (identical scores keep P exact).
        var dots: array<f32, ROWS>;
        var dps: array<f32, ROWS>;
        for (var t = 0u; t < ROWS; t++) {
          dots[t] = 0.0;
          dps[t] = 0.0;
        }
        for (var d4 = 0u; d4 < QK4; d4++) {
          let query = q_tile[r * QK4 + d4];
          for (var t = 0u; t < ROWS; t++) {
            dots[t] += dot(query, k_rows[t * QK4 + d4]);
          }
        }
        for (var d4 = 0u; d4 < V4; d4++) {
          let g = do_tile[r * V4 + d4];
          for (var t = 0u; t < ROWS; t++) {
            dps[t] += dot(g, v_rows[t * V4 + d4]);
          }
        }
        var weights: array<f32, ROWS>;
        var ds: array<f32, ROWS>;
        for (var t = 0u; t < ROWS; t++) {
          let j = first_key + t;
          weights[t] = 0.0;
          ds[t] = 0.0;
          if (i32(j) >= bounds.x && i32(j) <= min(bounds.y, last_key)) {
            let capped = capped_score(dots[t]);
            let score = masked_score(capped.x, b, h, i, j);
            // Bits, not ==: the score of a NaN row may itself be NaN (only a removed pair is exactly −∞).
            if (row_nan && bitcast<u32>(score) != bitcast<u32>(negative_infinity)) {
              poisoned[t] = true;
            } else if (score > negative_infinity) {
              let p = exp((score - lse) - residual_tile[r]);
#if DROPOUT
              let keep = select(0.0, params.dropout_scale, ((keep_bits[r * KEEP_WORDS + (j - key0) / 32u] >> (j % 32u)) & 1u) == 1u);
#else
              let keep = 1.0;
#endif
              weights[t] = p * keep;
              ds[t] = p * (dps[t] * keep - delta_tile[r]) * capped.y * params.scale;
            }
          }
        }
        for (var d4 = 0u; d4 < V4; d4++) {
          let g = do_tile[r * V4 + d4];
          for (var t = 0u; t < ROWS; t++) {
            dv_acc[t * V4 + d4] += weights[t] * g;
          }
        }
        for (var d4 = 0u; d4 < QK4; d4++) {
          let query = q_tile[r * QK4 + d4];
          for (var t = 0u; t < ROWS; t++) {
            dk_acc[t * QK4 + d4] += ds[t] * query;
          }
        }
      }
    }
  }

  for (var t = 0u; t < ROWS; t++) {
    let j = first_key + t;
    if (j < key_end) {
      let dk_address = params.dk_offset + b * params.dk_batch + kv_head * params.dk_head + (sequence.k_start + j) * params.dk_seq;
      let dv_address = params.dv_offset + b * params.dv_batch + kv_head * params.dv_head + (sequence.k_start + j) * params.dv_seq;
      for (var d = 0u; d < dqk; d++) {
        dk[dk_address + d * params.dk_dim] = select(${GRADIENT_T}(dk_acc[t * QK4 + d / 4u][d % 4u]), ${GRADIENT_NAN}, poisoned[t]);
      }
      for (var d = 0u; d < dvd; d++) {
        dv[dv_address + d * params.dv_dim] = select(${GRADIENT_T}(dv_acc[t * V4 + d / 4u][d % 4u]), ${GRADIENT_NAN}, poisoned[t]);
      }
    }
  }
}
