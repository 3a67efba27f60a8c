// FlashAttention-2 backward for dQ: one workgroup per tile of BLOCK_M query rows of one (batch, head), one thread
// per row (no atomics: deterministic). Loops over the key tiles the rows may attend, recomputes
// P = exp(score − logsumexp), regenerates the dropout bits and accumulates dQ += dS K · scale with
// dS = P ∘ (dP̃ − delta).

override BLOCK_M: u32 = 64u;
override BLOCK_N: u32 = 16u;
const HEAD_DIM_QK: u32 = ${HEAD_DIM_QK}u;
const HEAD_DIM_V: u32 = ${HEAD_DIM_V}u;

@group(0) @binding(5) var<storage, read> q: array<${T}>;
@group(0) @binding(6) var<storage, read> k: array<${T}>;
@group(0) @binding(7) var<storage, read> v: array<${T}>;
@group(0) @binding(8) var<storage, read> grad_out: array<${T}>;
@group(0) @binding(9) var<storage, read> logsumexp: array<f32>;
@group(0) @binding(10) var<storage, read> delta: array<f32>;
@group(0) @binding(11) var<storage, read_write> dq: array<${T}>;

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
    return;
  }
  let dqk = params.head_dim_qk;
  let dvd = params.head_dim_v;
  let negative_infinity = params.negative_infinity;

  let row_last = min(row0 + BLOCK_M, sequence.q_len) - 1u;
  let key_lo = max(key_bounds(i32(row0), sequence).x, 0);
  let key_hi = key_bounds(i32(row_last), sequence).y;
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
  var do_row: array<f32, HEAD_DIM_V>;
  var dq_acc: array<f32, HEAD_DIM_QK>;
  var lse = negative_infinity;
  var row_delta = 0.0;
  var lse_residual = 0.0;
  for (var d = 0u; d < HEAD_DIM_QK; d++) {
    dq_acc[d] = 0.0;
  }
  if (row_active) {
    let q_address = params.q_offset + b * params.q_batch + h * params.q_head + (sequence.q_start + i) * params.q_seq;
    let g_address = params.g_offset + b * params.g_batch + h * params.g_head + (sequence.q_start + i) * params.g_seq;
    for (var d = 0u; d < dqk; d++) {
      q_row[d] = f32(q[q_address + d * params.q_dim]);
    }
    for (var d = 0u; d < dvd; d++) {
      do_row[d] = f32(grad_out[g_address + d * params.g_dim]);
    }
    lse = logsumexp[batch_head * params.query_length + i];
    if (params.lse_residual == 1u) {
      lse_residual = logsumexp[params.lse_count + batch_head * params.query_length + i];
    }
    row_delta = delta[batch_head * params.query_length + i];
  }
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
      if (j < sequence.k_valid && d < dvd) {
        value = f32(v[v_base + (sequence.k_start + j) * params.v_seq + d * params.v_dim]);
      }
      v_tile[c * HEAD_DIM_V + d] = value;
    }
    workgroupBarrier();
    if (row_active && lse > negative_infinity) {
#if DROPOUT
      var words = vec4<u32>(0u);
#endif
      for (var c = 0u; c < BLOCK_N; c++) {
        let j = key0 + c;
#if DROPOUT
        if ((c & 3u) == 0u) {
          words = attention_dropout_words(dropout_key(), params.dropout_offset, batch_head, i, j >> 2u);
        }
#endif
        if (i32(j) < bounds.x || i32(j) > bounds.y) {
          continue;
        }
        var dot_product = 0.0;
        for (var d = 0u; d < HEAD_DIM_QK; d++) {
          dot_product += q_row[d] * k_tile[c * HEAD_DIM_QK + d];
        }
        let capped = capped_score(dot_product);
        let score = masked_score(capped.x, b, h, i, j);
        if (score == negative_infinity) {
          continue;
        }
        let p = exp((score - lse) - lse_residual);
#if DROPOUT
        let keep = dropout_factor(words[c & 3u]);
#else
        let keep = 1.0;
#endif
        var dp = 0.0;
        for (var d = 0u; d < HEAD_DIM_V; d++) {
          dp += do_row[d] * v_tile[c * HEAD_DIM_V + d];
        }
        let ds = p * (dp * keep - row_delta) * capped.y * params.scale;
        for (var d = 0u; d < HEAD_DIM_QK; d++) {
          dq_acc[d] += ds * k_tile[c * HEAD_DIM_QK + d];
        }
      }
    }
  }

  if (row_active) {
    let dq_address = params.dq_offset + b * params.dq_batch + h * params.dq_head + (sequence.q_start + i) * params.dq_seq;
    for (var d = 0u; d < dqk; d++) {
      dq[dq_address + d * params.dq_dim] = ${T}(dq_acc[d]);
    }
  }
}
