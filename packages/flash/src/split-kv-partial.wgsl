// Split-KV (flash-decoding) forward, pass 1: one workgroup per (key split, query row · head, batch). Its threads
// score the split's keys for that row (causal, window, key padding, masks, softcap, dropout as every flash
// kernel), reduce the split's max m and sum l, and write the split's unnormalised output Σ_j exp(s_j − m) z_j v_j
// (z_j: the dropout factor, 1 without dropout) with (m, l). Splits outside the row's allowed key range are not
// loaded. Pass 2 (split-kv-combine.wgsl) merges the splits. A NaN score of an allowed key (tested by its bits)
// makes the split's l NaN, which makes the row NaN in pass 2.
//
// A dispatch covers the chunk's rows [row_base, row_end) of head_count heads and its keys [key_base, key_end)
// (whole splits: binding-chunks.ts); the partials of a row chunk hold every split of its rows, indexed within the
// chunk, so that dispatches over several key chunks fill them before one combine.

override THREADS: u32 = 64u;
const MAX_CHUNK: u32 = 512u;
const HEAD_DIM_QK: u32 = ${HEAD_DIM_QK}u;

@group(0) @binding(5) var<storage, read> q: array<${T}>;
@group(0) @binding(6) var<storage, read> k: array<${T}>;
@group(0) @binding(7) var<storage, read> v: array<${T}>;
@group(0) @binding(8) var<storage, read_write> partial_stats: array<f32>;
@group(0) @binding(9) var<storage, read_write> partial_out: array<f32>;

var<workgroup> q_row: array<f32, HEAD_DIM_QK>;
var<workgroup> scores: array<f32, MAX_CHUNK>;
#if DROPOUT
// The dropout factor of each key of the split (0 or 1 / (1 − p)).
var<workgroup> keep: array<f32, MAX_CHUNK>;
#endif
var<workgroup> reduction: array<f32, THREADS>;
// 1 when some allowed key of the chunk has a NaN score (workgroup memory starts zeroed).
var<workgroup> chunk_nan: atomic<u32>;

fn reduce(lid: u32, value: f32, is_max: bool) -> f32 {
  reduction[lid] = value;
  workgroupBarrier();
  for (var stride = THREADS / 2u; stride > 0u; stride /= 2u) {
    if (lid < stride) {
      let other = reduction[lid + stride];
      reduction[lid] = select(reduction[lid] + other, max(reduction[lid], other), is_max);
    }
    workgroupBarrier();
  }
  let result = reduction[0];
  workgroupBarrier();
  return result;
}

@compute @workgroup_size(THREADS)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
  // Global indices: a chunked dispatch (binding-chunks.ts) covers head_count heads from head_base, rows from
  // row_base, batch entries from batch_base and the splits of its keys; the partials are indexed within the chunk.
  let split = params.key_base / params.split_length + wid.x;
  let local_row = wid.y / params.head_count;
  let local_head = wid.y % params.head_count;
  let i = params.row_base + local_row;
  let h = params.head_base + local_head;
  let b = params.batch_base + wid.z;
  let kv_head = h / (params.q_heads / params.kv_heads);
  let sequence = load_sequence(b);
  let negative_infinity = params.negative_infinity;
  let dqk = params.head_dim_qk;
  let dv = params.head_dim_v;

  let chunk0 = split * params.split_length;
  let chunk_end = min(chunk0 + params.split_length, params.key_length);
  let bounds = key_bounds(i32(i), sequence);
  let lo = u32(max(bounds.x, i32(chunk0)));
  let hi_signed = min(bounds.y, i32(chunk_end) - 1);
  // Packed varlen: rows past the sequence's end have no keys (the combine writes their logsumexp).
  let row_exists = i < sequence.q_len;
  let any_key = row_exists && hi_signed >= i32(lo);
  let hi = select(lo, u32(max(hi_signed, 0)) + 1u, any_key); // exclusive

  for (var d = lid; d < dqk && row_exists; d += THREADS) {
    let q_address = params.q_offset + b * params.q_batch + h * params.q_head + (sequence.q_start + i) * params.q_seq;
    q_row[d] = f32(q[q_address + d * params.q_dim]);
  }
  workgroupBarrier();

  let k_base = params.k_offset + b * params.k_batch + kv_head * params.k_head;
  var local_max = negative_infinity;
  for (var j = lo + lid; j < hi; j += THREADS) {
    let k_address = k_base + (sequence.k_start + j) * params.k_seq;
    var dot_product = 0.0;
    for (var d = 0u; d < dqk; d++) {
      dot_product += q_row[d] * f32(k[k_address + d * params.k_dim]);
    }
    var score = masked_score(capped_score(dot_product).x, b, h, i, j);
    if (is_nan(score)) {
      atomicStore(&chunk_nan, 1u);
      score = negative_infinity;
    }
    scores[j - chunk0] = score;
    local_max = max(local_max, score);
  }
  let m = reduce(lid, local_max, true);

  var local_sum = 0.0;
  for (var j = lo + lid; j < hi; j += THREADS) {
    let score = scores[j - chunk0];
    let p = select(exp(score - m), 0.0, score == negative_infinity);
    scores[j - chunk0] = p;
    local_sum += p;
#if DROPOUT
    keep[j - chunk0] = dropout_factor(attention_dropout_word(dropout_stream(), b * params.q_heads + h, i, j));
#endif
  }
  let l = reduce(lid, local_sum, false);

  let row_count = params.row_end - params.row_base;
  let partial = ((wid.z * params.head_count + local_head) * row_count + local_row) * params.split_count + split;
  let v_base = params.v_offset + b * params.v_batch + kv_head * params.v_head;
  for (var d = lid; d < dv; d += THREADS) {
    var acc = 0.0;
    for (var j = lo; j < hi; j++) {
      let p = scores[j - chunk0];
      if (p != 0.0) {
#if DROPOUT
        acc += (p * keep[j - chunk0]) * f32(v[v_base + (sequence.k_start + j) * params.v_seq + d * params.v_dim]);
#else
        acc += p * f32(v[v_base + (sequence.k_start + j) * params.v_seq + d * params.v_dim]);
#endif
      }
    }
    partial_out[partial * dv + d] = acc;
  }
  if (lid == 0u) {
    partial_stats[partial * 2u] = m;
    partial_stats[partial * 2u + 1u] = select(l, nan_f32(), atomicLoad(&chunk_nan) == 1u);
  }
}
