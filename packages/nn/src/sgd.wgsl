// One SGD step for one parameter, in place (torch.optim.SGD):
//   g = grad + weight_decay · p
//   momentum: buf = first_step ? g : momentum·buf + (1 − dampening)·g;  g = nesterov ? g + momentum·buf : buf
//   p = p − lr · g
// Without momentum the buffer binding is a one-word placeholder that is never touched.
${UNIFORMS}

@group(0) @binding(0) var<storage, read_write> param: array<f32>;
@group(0) @binding(1) var<storage, read> grad: array<f32>;
@group(0) @binding(2) var<storage, read_write> momentum_buffer: array<f32>;
@group(0) @binding(3) var<uniform> u: Uniforms;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) groups: vec3u,
        @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * groups.x) * 256u + lid;
  if (i >= u.count) {
    return;
  }
  let p = param[u.param_offset + i];
  var g = grad[u.grad_offset + i] + u.weight_decay * p;
  if (u.use_momentum != 0u) {
    var buffer = g;
    if (u.first_step == 0u) {
      buffer = u.momentum * momentum_buffer[i] + (1.0 - u.dampening) * g;
    }
    momentum_buffer[i] = buffer;
    if (u.nesterov != 0u) {
      g = g + u.momentum * buffer;
    } else {
      g = buffer;
    }
  }
  param[u.param_offset + i] = p - u.lr * g;
}
