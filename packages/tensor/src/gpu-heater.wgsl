// Keeps the GPU busy for a chosen number of dependent iterations in one small workgroup (gpu-timing.ts: submitted
// before the host records a sample's calls, so that the GPU does not sit idle for the recording and clock down
// before them). One workgroup: whatever of it overlaps the sample takes one SM.

${UNIFORMS}
@group(0) @binding(0) var<storage, read_write> sink: array<u32>;
@group(0) @binding(1) var<uniform> params: Params;

@compute @workgroup_size(64)
fn main(@builtin(local_invocation_index) lid: u32) {
  var x = lid + 1u;
  for (var i = 0u; i < params.iterations; i++) {
    x = x * 1664525u + 1013904223u;
  }
  // Written so that the loop cannot be removed.
  sink[lid] = x;
}
