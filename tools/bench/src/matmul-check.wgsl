// C = A · B for row-major f32 matrices, one invocation per element of C: a plain kernel whose only job is to
// prove that the device computes correctly (tools/bench `info`), not to be fast.

${UNIFORMS}

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> c: array<f32>;
@group(0) @binding(3) var<uniform> u: Uniforms;

@compute @workgroup_size(8, 8)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
  let row = id.y;
  let column = id.x;
  if (row >= u.m || column >= u.n) {
    return;
  }
  var sum = 0.0;
  for (var index = 0u; index < u.k; index++) {
    sum += a[row * u.k + index] * b[index * u.n + column];
  }
  c[row * u.n + column] = sum;
}
