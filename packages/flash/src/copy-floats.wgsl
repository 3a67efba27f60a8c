// Copies params.count f32 values from values_in[params.source_index + e] to values_out[params.target_index + e]:
// stages a chunk's logsumexp rows (and their rounding residuals) between the logsumexp buffer and a per-chunk
// scratch (row-stats.ts). A grid-stride loop, so any count runs on at most 65535 workgroups.

${UNIFORMS}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> values_in: array<f32>;
@group(0) @binding(2) var<storage, read_write> values_out: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  for (var e = gid.x; e < params.count; e += params.stride) {
    values_out[params.target_index + e] = values_in[params.source_index + e];
  }
}
