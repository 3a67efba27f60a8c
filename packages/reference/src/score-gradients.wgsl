// Backward step: d raw score for every element (b, h, i, j), recomputing P = exp(score − logsumexp):
//   dP = dropout(dO_i · v_j), dS = P · (dP − Δ_i), d raw = dS · softcap slope · scale (0 where removed).
${UNIFORMS}

@group(0) @binding(0) var<storage, read> q_data: array<${ELEMENT}>;
@group(0) @binding(1) var<storage, read> k_data: array<${ELEMENT}>;
@group(0) @binding(2) var<storage, read> v_data: array<${ELEMENT}>;
@group(0) @binding(3) var<storage, read> mask_data: array<${MASK_ELEMENT}>;
@group(0) @binding(4) var<storage, read> sequences: array<u32>;
@group(0) @binding(5) var<storage, read> stats: array<f32>;
@group(0) @binding(6) var<storage, read> grad_data: array<${ELEMENT}>;
@group(0) @binding(7) var<storage, read_write> score_gradients: array<f32>;
@group(0) @binding(8) var<uniform> u: AttentionUniforms;

#if F16
fn load_v(index: u32) -> f32 { return unpack2x16float(v_data[index >> 1u])[index & 1u]; }
fn load_grad(index: u32) -> f32 { return unpack2x16float(grad_data[index >> 1u])[index & 1u]; }
#else
fn load_v(index: u32) -> f32 { return v_data[index]; }
fn load_grad(index: u32) -> f32 { return grad_data[index]; }
#endif

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let t = (wid.x + wid.y * groups.x) * 64u + lid;
  if (t >= u.batch * u.query_heads * u.query_length * u.key_length) { return; }
  let j = t % u.key_length;
  let row = t / u.key_length;
  let i = row % u.query_length;
  let bh = row / u.query_length;
  let h = bh % u.query_heads;
  let b = bh / u.query_heads;
  let s = sequence_of(b);
  let score = attention_score(b, h, i, j, s);
  let lse = stats[2u * row];
  if (score.x <= MASKED_LIMIT || lse <= MASKED_LIMIT) {
    score_gradients[t] = 0.0;
    return;
  }
  let p = exp(score.x - lse);
  let kv_head = h * u.kv_heads / u.query_heads;
  let v_base = u.v_offset + b * u.v_batch + kv_head * u.v_head + (s.k_start + j) * u.v_sequence;
  let g_base = u.grad_offset + b * u.grad_batch + h * u.grad_head + (s.q_start + i) * u.grad_sequence;
  var grad_p = 0.0;
  for (var d = 0u; d < u.head_dim_v; d++) {
    grad_p += load_grad(g_base + d * u.grad_dim) * load_v(v_base + d * u.v_dim);
  }
  if (u.threshold != 0u) {
    let keep = attention_dropout_word(vec4<u32>(u.stream0, u.stream1, u.stream2, u.stream3), bh, i, j) >= u.threshold;
    grad_p = select(0.0, grad_p * u.keep_scale, keep);
  }
  score_gradients[t] = p * (grad_p - stats[2u * row + 1u]) * score.y * u.scale;
}
