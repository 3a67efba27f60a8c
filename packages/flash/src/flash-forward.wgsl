// FlashAttention forward (Dao et al.): one workgroup per tile of BLOCK_M query rows of one (batch, head), one
// thread per row. Key/value tiles of BLOCK_N rows are staged in workgroup memory; each row keeps an online
// softmax (running max m, running sum l, unnormalised output) in f32. Key tiles that no row of the tile may
// attend (causal, window, key padding, varlen bounds) are never loaded. Writes out and logsumexp = m + log l
// (−∞ and out = 0 for a row without any allowed key). When the logsumexp buffer has room for 2·B·Hq·L floats
// (params.lse_residual), the second half receives each row's rounding residual (m − lse) + log l.

override BLOCK_M: u32 = 64u;
override BLOCK_N: u32 = 16u;
const MAX_BLOCK_N: u32 = 64u;
const HEAD_DIM_QK: u32 = ${HEAD_DIM_QK}u;
const HEAD_DIM_V: u32 = ${HEAD_DIM_V}u;

@group(0) @binding(5) var<storage, read> q: array<${T}>;
@group(0) @binding(6) var<storage, read> k: array<${T}>;
@group(0) @binding(7) var<storage, read> v: array<${T}>;
@group(0) @binding(8) var<storage, read_write> out: array<${T}>;
@group(0) @binding(9) var<storage, read_write> logsumexp: array<f32>;

var<workgroup> k_tile: array<f32, BLOCK_N * HEAD_DIM_QK>;
var<workgroup> v_tile: array<f32, BLOCK_N * HEAD_DIM_V>;
var<workgroup> sequence_shared: Sequence;

@compute @workgroup_size(BLOCK_M)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
  let b = wid.z;
  let h = wid.y;
  let kv_head = h / (params.q_heads / params.kv_heads);
  let row0 = wid.x * BLOCK_M;
  if (lid == 0u) {
    sequence_shared = load_sequence(b);
  }
  let sequence = workgroupUniformLoad(&sequence_shared);
  if (row0 >= sequence.q_len) {
    // Packed varlen: rows past this sequence's end get logsumexp −∞ (like the reference).
    if (row0 + lid < params.query_length) {
      logsumexp[(b * params.q_heads + h) * params.query_length + row0 + lid] = params.negative_infinity;
    }
    return;
  }
  let dqk = params.head_dim_qk;
  let dv = params.head_dim_v;
  let negative_infinity = params.negative_infinity;

  // Keys any row of this tile may attend: bounds are monotone in the row.
  let row_last = min(row0 + BLOCK_M, sequence.q_len) - 1u;
  let first_bounds = key_bounds(i32(row0), sequence);
  let last_bounds = key_bounds(i32(row_last), sequence);
  let key_lo = max(first_bounds.x, 0);
  let key_hi = last_bounds.y;
  var tile_begin = 0u;
  var tile_end = 0u;
  if (key_hi >= key_lo) {
    tile_begin = u32(key_lo) / BLOCK_N;
    tile_end = u32(key_hi) / BLOCK_N + 1u;
  }

  let i = row0 + lid;
  let row_active = i < sequence.q_len;
  let bounds = key_bounds(i32(i), sequence);
  let batch_head = b * params.q_heads + h;
  var q_row: array<f32, HEAD_DIM_QK>;
  var acc: array<f32, HEAD_DIM_V>;
  for (var d = 0u; d < HEAD_DIM_V; d++) {
    acc[d] = 0.0;
  }
  if (row_active) {
    let q_base = params.q_offset + b * params.q_batch + h * params.q_head + (sequence.q_start + i) * params.q_seq;
    for (var d = 0u; d < dqk; d++) {
      q_row[d] = f32(q[q_base + d * params.q_dim]);
    }
  }
  var m = negative_infinity;
  var l = 0.0;
  let k_base = params.k_offset + b * params.k_batch + kv_head * params.k_head;
  let v_base = params.v_offset + b * params.v_batch + kv_head * params.v_head;

  for (var tile = tile_begin; tile < tile_end; tile++) {
    let key0 = tile * BLOCK_N;
    workgroupBarrier();
    for (var e = lid; e < BLOCK_N * HEAD_DIM_QK; e += BLOCK_M) {
      let c = e / HEAD_DIM_QK;
      let d = e % HEAD_DIM_QK;
      let j = key0 + c;
      var value = 0.0;
      if (j < sequence.k_valid && d < dqk) {
        value = f32(k[k_base + (sequence.k_start + j) * params.k_seq + d * params.k_dim]);
      }
      k_tile[c * HEAD_DIM_QK + d] = value;
    }
    for (var e = lid; e < BLOCK_N * HEAD_DIM_V; e += BLOCK_M) {
      let c = e / HEAD_DIM_V;
      let d = e % HEAD_DIM_V;
      let j = key0 + c;
      var value = 0.0;
      if (j < sequence.k_valid && d < dv) {
        value = f32(v[v_base + (sequence.k_start + j) * params.v_seq + d * params.v_dim]);
      }
      v_tile[c * HEAD_DIM_V + d] = value;
    }
    workgroupBarrier();
    if (row_active) {
      var scores: array<f32, MAX_BLOCK_N>;
      var tile_max = negative_infinity;
      for (var c = 0u; c < BLOCK_N; c++) {
        let j = key0 + c;
        var score = negative_infinity;
        if (i32(j) >= bounds.x && i32(j) <= bounds.y) {
          var dot_product = 0.0;
          for (var d = 0u; d < HEAD_DIM_QK; d++) {
            dot_product += q_row[d] * k_tile[c * HEAD_DIM_QK + d];
          }
          score = masked_score(capped_score(dot_product).x, b, h, i, j);
        }
        scores[c] = score;
        tile_max = max(tile_max, score);
      }
      let m_new = max(m, tile_max);
      if (m_new > negative_infinity) {
        let correction = select(exp(m - m_new), 0.0, m == negative_infinity);
        l *= correction;
        for (var d = 0u; d < HEAD_DIM_V; d++) {
          acc[d] *= correction;
        }
#if DROPOUT
        var words = vec4<u32>(0u);
#endif
        for (var c = 0u; c < BLOCK_N; c++) {
          let score = scores[c];
#if DROPOUT
          if ((c & 3u) == 0u) {
            words = attention_dropout_words(dropout_key(), params.dropout_offset, batch_head, i, (key0 + c) >> 2u);
          }
#endif
          if (score > negative_infinity) {
            let p = exp(score - m_new);
            l += p;
#if DROPOUT
            let weight = p * dropout_factor(words[c & 3u]);
#else
            let weight = p;
#endif
            if (weight != 0.0) {
              for (var d = 0u; d < HEAD_DIM_V; d++) {
                acc[d] += weight * v_tile[c * HEAD_DIM_V + d];
              }
            }
          }
        }
        m = m_new;
      }
    }
  }

  if (row_active) {
    let o_base = params.o_offset + b * params.o_batch + h * params.o_head + (sequence.q_start + i) * params.o_seq;
    let inverse = select(0.0, 1.0 / l, l > 0.0);
    for (var d = 0u; d < dv; d++) {
      out[o_base + d * params.o_dim] = ${T}(acc[d] * inverse);
    }
    let lse_index = batch_head * params.query_length + i;
    let log_sum = log(l);
    let lse = m + log_sum;
    logsumexp[lse_index] = select(negative_infinity, lse, l > 0.0);
    if (params.lse_residual == 1u) {
      // What rounding m + log l to f32 lost: backward subtracts it too, so P is exact even for huge logits. The
      // stored value goes through an XOR with a uniform zero so that no compiler folds (m − (m + log l)) + log l
      // to 0 algebraically (a driver doing so was seen to lose exactly this residual).
      let stored = bitcast<f32>(bitcast<u32>(lse) ^ params.opaque_zero);
      logsumexp[params.lse_count + lse_index] = select(0.0, (m - stored) + log_sum, l > 0.0);
    }
  } else if (i < params.query_length) {
    logsumexp[batch_head * params.query_length + i] = negative_infinity;
  }
}
