// One Adam / AdamW step for one parameter, in place (torch.optim.Adam / AdamW, foreach=False arithmetic):
//   g = grad + l2 · p;  m = β1·m + (1 − β1)·g;  v = β2·v + (1 − β2)·g²
//   p = p · decay − step_size · m / (√v · inv_sqrt_correction2 + eps)
// with decay = 1 − lr·weight_decay for AdamW (else 1), step_size = lr / (1 − β1ᵗ), inv_sqrt_correction2 =
// 1 / √(1 − β2ᵗ). One thread per element; the linear index is rebuilt from a 2-D workgroup grid.
${UNIFORMS}

@group(0) @binding(0) var<storage, read_write> param: array<f32>;
@group(0) @binding(1) var<storage, read> grad: array<f32>;
@group(0) @binding(2) var<storage, read_write> first_moment: array<f32>;
@group(0) @binding(3) var<storage, read_write> second_moment: array<f32>;
@group(0) @binding(4) var<uniform> u: Uniforms;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) groups: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * groups.x) * 256u + lid;
  if (i >= u.count) {
    return;
  }
  let p = param[u.param_offset + i];
  let g = grad[u.grad_offset + i] + u.l2 * p;
  let m = u.beta1 * first_moment[i] + (1.0 - u.beta1) * g;
  let v = u.beta2 * second_moment[i] + (1.0 - u.beta2) * g * g;
  first_moment[i] = m;
  second_moment[i] = v;
  param[u.param_offset + i] = p * u.decay - u.step_size * m / (sqrt(v) * u.inv_sqrt_correction2 + u.eps);
}
