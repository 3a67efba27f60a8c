// Copies a dense source [outer, piece] of 32-bit elements into columns start .. start + piece − 1 of a dense
// destination [outer, total]: one invocation per element.

${UNIFORMS}

@group(0) @binding(0) var<storage, read> source: array<u32>;
@group(0) @binding(1) var<storage, read_write> destination: array<u32>;
@group(0) @binding(2) var<uniform> u: Uniforms;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let index = gid.x + gid.y * groups.x * 64u;
  if (index >= u.count) {
    return;
  }
  let row = index / u.piece;
  let col = index % u.piece;
  destination[row * u.total + u.start + col] = source[index];
}
