// out[b, h, i, d] = Σ_j W[b, h, i, j] · X[b, kv(h), j, d]: the forward's P·V (X = v) and backward's dQ (X = k,
// W = d score). W is [B, Hq, L, S] f32; X is strided, f32 or f16; out is f32 with the given strides.
${UNIFORMS}

@group(0) @binding(0) var<storage, read> weights: array<f32>;
@group(0) @binding(1) var<storage, read> x_data: array<${ELEMENT}>;
@group(0) @binding(2) var<storage, read> sequences: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<uniform> u: ProductUniforms;

#if F16
fn load_x(index: u32) -> f32 { return unpack2x16float(x_data[index >> 1u])[index & 1u]; }
#else
fn load_x(index: u32) -> f32 { return x_data[index]; }
#endif

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let t = (wid.x + wid.y * groups.x) * 64u + lid;
  if (t >= u.batch * u.query_heads * u.query_length * u.dim) { return; }
  let d = t % u.dim;
  let row = t / u.dim;
  let i = row % u.query_length;
  let bh = row / u.query_length;
  let h = bh % u.query_heads;
  let b = bh / u.query_heads;
  let base = b * 6u;
  let q_start = sequences[base];
  let q_rows = sequences[base + 1u];
  let k_start = sequences[base + 2u];
  let k_rows = sequences[base + 3u];
  if (i >= q_rows) { return; }
  let kv_head = h * u.kv_heads / u.query_heads;
  let x_base = u.x_offset + b * u.x_batch + kv_head * u.x_head + d * u.x_dim;
  let w_base = row * u.key_length;
  var sum = 0.0;
  for (var j = 0u; j < k_rows; j++) {
    sum += weights[w_base + j] * load_x(x_base + (k_start + j) * u.x_sequence);
  }
  out[b * u.out_batch + h * u.out_head + (q_start + i) * u.out_sequence + d] = sum;
}
