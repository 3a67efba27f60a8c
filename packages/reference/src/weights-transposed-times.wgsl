// out[b, g, j, d] = Σ over query heads h of kv head g, Σ_i W[b, h, i, j] · Y[b, h, i, d]: backward's dV
// (W = weights after dropout, Y = dO) and dK (W = d score, Y = q). Y is strided, f32 or f16; out is f32.
${UNIFORMS}

@group(0) @binding(0) var<storage, read> weights: array<f32>;
@group(0) @binding(1) var<storage, read> y_data: array<${ELEMENT}>;
@group(0) @binding(2) var<storage, read> sequences: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<uniform> u: ProductUniforms;

#if F16
fn load_y(index: u32) -> f32 { return unpack2x16float(y_data[index >> 1u])[index & 1u]; }
#else
fn load_y(index: u32) -> f32 { return y_data[index]; }
#endif

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let t = (wid.x + wid.y * groups.x) * 64u + lid;
  if (t >= u.batch * u.kv_heads * u.key_length * u.dim) { return; }
  let d = t % u.dim;
  let column = t / u.dim;
  let j = column % u.key_length;
  let bg = column / u.key_length;
  let g = bg % u.kv_heads;
  let b = bg / u.kv_heads;
  let base = b * 6u;
  let q_start = sequences[base];
  let q_rows = sequences[base + 1u];
  let k_start = sequences[base + 2u];
  let k_rows = sequences[base + 3u];
  if (j >= k_rows) { return; }
  let group = u.query_heads / u.kv_heads;
  var sum = 0.0;
  for (var h = g * group; h < (g + 1u) * group; h++) {
    let w_base = (b * u.query_heads + h) * u.query_length * u.key_length + j;
    let y_base = u.x_offset + b * u.x_batch + h * u.x_head + d * u.x_dim;
    for (var i = 0u; i < q_rows; i++) {
      sum += weights[w_base + i * u.key_length] * load_y(y_base + (q_start + i) * u.x_sequence);
    }
  }
  out[b * u.out_batch + g * u.out_head + (k_start + j) * u.out_sequence + d] = sum;
}
