// Backward step: per row (b, h, i), stats = (logsumexp, Δ = Σ_d dO · out). One thread per row.
${UNIFORMS}

@group(0) @binding(0) var<storage, read> logsumexp: array<f32>;
@group(0) @binding(1) var<storage, read> out_data: array<${ELEMENT}>;
@group(0) @binding(2) var<storage, read> grad_data: array<${ELEMENT}>;
@group(0) @binding(3) var<storage, read> sequences: array<u32>;
@group(0) @binding(4) var<storage, read_write> stats: array<f32>;
@group(0) @binding(5) var<uniform> u: RowUniforms;

#if F16
fn load_out(index: u32) -> f32 { return unpack2x16float(out_data[index >> 1u])[index & 1u]; }
fn load_grad(index: u32) -> f32 { return unpack2x16float(grad_data[index >> 1u])[index & 1u]; }
#else
fn load_out(index: u32) -> f32 { return out_data[index]; }
fn load_grad(index: u32) -> f32 { return grad_data[index]; }
#endif

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let row = (wid.x + wid.y * groups.x) * 64u + lid;
  if (row >= u.batch * u.query_heads * u.query_length) { return; }
  let i = row % u.query_length;
  let bh = row / u.query_length;
  let h = bh % u.query_heads;
  let b = bh / u.query_heads;
  let q_start = sequences[b * 6u];
  let q_rows = sequences[b * 6u + 1u];
  var delta = 0.0;
  if (i < q_rows) {
    let o_base = u.out_offset + b * u.out_batch + h * u.out_head + (q_start + i) * u.out_sequence;
    let g_base = u.grad_offset + b * u.grad_batch + h * u.grad_head + (q_start + i) * u.grad_sequence;
    for (var d = 0u; d < u.dim; d++) {
      delta += load_out(o_base + d * u.out_dim) * load_grad(g_base + d * u.grad_dim);
    }
  }
  stats[2u * row] = logsumexp[row];
  stats[2u * row + 1u] = delta;
}
