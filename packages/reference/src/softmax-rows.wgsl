// Forward step 2, one workgroup per row (b, h, i): softmax of the scores in place, then dropout (the attention
// dropout stream, the same bits as attentionKeep), and the row logsumexp (−∞ for a fully masked row, whose weights
// are all 0).
// A NaN score (NaN in q or k) makes the whole row NaN, as in PyTorch; it is found from the bits because WGSL
// leaves NaN comparisons and max() to the implementation.
${UNIFORMS}

@group(0) @binding(0) var<storage, read_write> scores: array<f32>;
@group(0) @binding(1) var<storage, read_write> logsumexp: array<f32>;
@group(0) @binding(2) var<uniform> u: SoftmaxUniforms;

const MASKED_LIMIT: f32 = -1.0e38;
var<workgroup> partial: array<f32, 64>;

fn reduce_max(lid: u32, value: f32) -> f32 {
  partial[lid] = value;
  workgroupBarrier();
  for (var stride = 32u; stride > 0u; stride >>= 1u) {
    if (lid < stride) { partial[lid] = max(partial[lid], partial[lid + stride]); }
    workgroupBarrier();
  }
  let result = partial[0];
  workgroupBarrier();
  return result;
}

fn reduce_sum(lid: u32, value: f32) -> f32 {
  partial[lid] = value;
  workgroupBarrier();
  for (var stride = 32u; stride > 0u; stride >>= 1u) {
    if (lid < stride) { partial[lid] = partial[lid] + partial[lid + stride]; }
    workgroupBarrier();
  }
  let result = partial[0];
  workgroupBarrier();
  return result;
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let row = wid.x + wid.y * groups.x;
  if (row >= u.rows) { return; }
  let base = row * u.columns;
  var local_max = MASKED_LIMIT;
  var local_nan = 0.0;
  for (var j = lid; j < u.columns; j += 64u) {
    let s = scores[base + j];
    if ((bitcast<u32>(s) & 0x7fffffffu) > 0x7f800000u) { local_nan = 1.0; } else { local_max = max(local_max, s); }
  }
  let row_has_nan = reduce_max(lid, local_nan) > 0.0;
  let row_max = reduce_max(lid, local_max);
  let empty = row_max <= MASKED_LIMIT;
  var local_sum = 0.0;
  if (!empty) {
    for (var j = lid; j < u.columns; j += 64u) {
      let s = scores[base + j];
      if (s > MASKED_LIMIT) { local_sum += exp(s - row_max); }
    }
  }
  let sum = reduce_sum(lid, local_sum);
  let i = row % u.query_length;
  let batch_head = row / u.query_length;
  let stream = vec4<u32>(u.stream0, u.stream1, u.stream2, u.stream3);
  for (var j = lid; j < u.columns; j += 64u) {
    let s = scores[base + j];
    var p = 0.0;
    if (!empty && s > MASKED_LIMIT) { p = exp(s - row_max) / sum; }
    if (u.threshold != 0u) {
      let keep = attention_dropout_word(stream, batch_head, i, j) >= u.threshold;
      p = select(0.0, p * u.keep_scale, keep);
    }
    var nan_bits = 0x7fc00000u;
    if (row_has_nan) { p = bitcast<f32>(nan_bits); }
    scores[base + j] = p;
  }
  if (lid == 0u) {
    var negative_infinity_bits = 0xff800000u; // a var: WGSL constants cannot hold −∞
    var nan_bits = 0x7fc00000u;
    logsumexp[row] = select(select(row_max + log(sum), bitcast<f32>(negative_infinity_bits), empty), bitcast<f32>(nan_bits), row_has_nan);
  }
}
