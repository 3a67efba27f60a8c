// FlashAttention-2 backward for dK and dV: one workgroup per tile of BLOCK_N keys of one (batch, kv head), one
// thread per key. It loops over the query heads that share the kv head (GQA) and over the query tiles that may
// attend its keys (others are skipped), stages Q, dO, logsumexp and delta in workgroup memory, recomputes
// P = exp(score − logsumexp), regenerates the dropout bits and accumulates dV += P̃ᵀ dO and
// dK += dSᵀ Q · scale. Each key's gradient is summed by one thread in a fixed order: deterministic.

override BLOCK_M: u32 = 16u;
override BLOCK_N: u32 = 64u;
const HEAD_DIM_QK: u32 = ${HEAD_DIM_QK}u;
const HEAD_DIM_V: u32 = ${HEAD_DIM_V}u;

@group(0) @binding(5) var<storage, read> q: array<${T}>;
@group(0) @binding(6) var<storage, read> k: array<${T}>;
@group(0) @binding(7) var<storage, read> v: array<${T}>;
@group(0) @binding(8) var<storage, read> grad_out: array<${T}>;
@group(0) @binding(9) var<storage, read> logsumexp: array<f32>;
@group(0) @binding(10) var<storage, read> delta: array<f32>;
@group(0) @binding(11) var<storage, read_write> dk: array<${T}>;
@group(0) @binding(12) var<storage, read_write> dv: array<${T}>;

var<workgroup> q_tile: array<f32, BLOCK_M * HEAD_DIM_QK>;
var<workgroup> do_tile: array<f32, BLOCK_M * HEAD_DIM_V>;
var<workgroup> lse_tile: array<f32, BLOCK_M>;
var<workgroup> residual_tile: array<f32, BLOCK_M>;
var<workgroup> delta_tile: array<f32, BLOCK_M>;
var<workgroup> sequence_shared: Sequence;

@compute @workgroup_size(BLOCK_N)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
  let b = wid.z;
  let kv_head = wid.y;
  let key0 = wid.x * BLOCK_N;
  if (lid == 0u) {
    sequence_shared = load_sequence(b);
  }
  let sequence = workgroupUniformLoad(&sequence_shared);
  if (key0 >= sequence.k_len) {
    return;
  }
  let dqk = params.head_dim_qk;
  let dvd = params.head_dim_v;
  let negative_infinity = params.negative_infinity;
  let group = params.q_heads / params.kv_heads;

  // Rows that may attend some key of this tile.
  var tile_begin = 0u;
  var tile_end = 0u;
  if (key0 < sequence.k_valid && sequence.q_len > 0u) {
    let key_last = min(key0 + BLOCK_N, sequence.k_valid) - 1u;
    let rows = row_bounds(i32(key0), i32(key_last), sequence);
    if (rows.y >= rows.x) {
      tile_begin = u32(rows.x) / BLOCK_M;
      tile_end = u32(rows.y) / BLOCK_M + 1u;
    }
  }

  let j = key0 + lid;
  let key_active = j < sequence.k_valid;
  var k_row: array<f32, HEAD_DIM_QK>;
  var v_row: array<f32, HEAD_DIM_V>;
  var dk_acc: array<f32, HEAD_DIM_QK>;
  var dv_acc: array<f32, HEAD_DIM_V>;
  let k_address = params.k_offset + b * params.k_batch + kv_head * params.k_head + (sequence.k_start + j) * params.k_seq;
  let v_address = params.v_offset + b * params.v_batch + kv_head * params.v_head + (sequence.k_start + j) * params.v_seq;
  for (var d = 0u; d < HEAD_DIM_QK; d++) {
    dk_acc[d] = 0.0;
    k_row[d] = 0.0;
  }
  for (var d = 0u; d < HEAD_DIM_V; d++) {
    dv_acc[d] = 0.0;
    v_row[d] = 0.0;
  }
  if (key_active) {
    for (var d = 0u; d < dqk; d++) {
      k_row[d] = f32(k[k_address + d * params.k_dim]);
    }
    for (var d = 0u; d < dvd; d++) {
      v_row[d] = f32(v[v_address + d * params.v_dim]);
    }
  }

  for (var head_in_group = 0u; head_in_group < group; head_in_group++) {
    let h = kv_head * group + head_in_group;
    let batch_head = b * params.q_heads + h;
    let q_base = params.q_offset + b * params.q_batch + h * params.q_head;
    let g_base = params.g_offset + b * params.g_batch + h * params.g_head;
    for (var tile = tile_begin; tile < tile_end; tile++) {
      let row0 = tile * BLOCK_M;
      workgroupBarrier();
      for (var e = lid; e < BLOCK_M * HEAD_DIM_QK; e += BLOCK_N) {
        let r = e / HEAD_DIM_QK;
        let d = e % HEAD_DIM_QK;
        let i = row0 + r;
        var value = 0.0;
        if (i < sequence.q_len && d < dqk) {
          value = f32(q[q_base + (sequence.q_start + i) * params.q_seq + d * params.q_dim]);
        }
        q_tile[r * HEAD_DIM_QK + d] = value;
      }
      for (var e = lid; e < BLOCK_M * HEAD_DIM_V; e += BLOCK_N) {
        let r = e / HEAD_DIM_V;
        let d = e % HEAD_DIM_V;
        let i = row0 + r;
        var value = 0.0;
        if (i < sequence.q_len && d < dvd) {
          value = f32(grad_out[g_base + (sequence.q_start + i) * params.g_seq + d * params.g_dim]);
        }
        do_tile[r * HEAD_DIM_V + d] = value;
      }
      for (var r = lid; r < BLOCK_M; r += BLOCK_N) {
        let i = row0 + r;
        var lse = negative_infinity;
        var row_delta = 0.0;
        var residual = 0.0;
        if (i < sequence.q_len) {
          lse = logsumexp[batch_head * params.query_length + i];
          row_delta = delta[batch_head * params.query_length + i];
          if (params.lse_residual == 1u) {
            residual = logsumexp[params.lse_count + batch_head * params.query_length + i];
          }
        }
        lse_tile[r] = lse;
        residual_tile[r] = residual;
        delta_tile[r] = row_delta;
      }
      workgroupBarrier();
      if (key_active) {
        for (var r = 0u; r < BLOCK_M; r++) {
          let i = row0 + r;
          let lse = lse_tile[r];
          let bounds = key_bounds(i32(i), sequence);
          if (lse == negative_infinity || i32(j) < bounds.x || i32(j) > bounds.y) {
            continue;
          }
          var dot_product = 0.0;
          for (var d = 0u; d < HEAD_DIM_QK; d++) {
            dot_product += q_tile[r * HEAD_DIM_QK + d] * k_row[d];
          }
          let capped = capped_score(dot_product);
          let score = masked_score(capped.x, b, h, i, j);
          if (score == negative_infinity) {
            continue;
          }
          let p = exp((score - lse) - residual_tile[r]);
#if DROPOUT
          let keep = dropout_factor(attention_dropout_word(dropout_key(), params.dropout_offset, batch_head, i, j));
#else
          let keep = 1.0;
#endif
          var dp = 0.0;
          let weight = p * keep;
          for (var d = 0u; d < HEAD_DIM_V; d++) {
            let g = do_tile[r * HEAD_DIM_V + d];
            dv_acc[d] += weight * g;
            dp += g * v_row[d];
          }
          let ds = p * (dp * keep - delta_tile[r]) * capped.y * params.scale;
          for (var d = 0u; d < HEAD_DIM_QK; d++) {
            dk_acc[d] += ds * q_tile[r * HEAD_DIM_QK + d];
          }
        }
      }
    }
  }

  if (j < sequence.k_len) {
    let dk_address = params.dk_offset + b * params.dk_batch + kv_head * params.dk_head + (sequence.k_start + j) * params.dk_seq;
    let dv_address = params.dv_offset + b * params.dv_batch + kv_head * params.dv_head + (sequence.k_start + j) * params.dv_seq;
    for (var d = 0u; d < dqk; d++) {
      dk[dk_address + d * params.dk_dim] = ${T}(dk_acc[d]);
    }
    for (var d = 0u; d < dvd; d++) {
      dv[dv_address + d * params.dv_dim] = ${T}(dv_acc[d]);
    }
  }
}
