// Backward preprocessing: delta_i = Σ_d dO[i, d] · O[i, d] (f32), one thread per query row. gradOut has its own
// layout (params.g_*). delta is [B, Hq, L] like the logsumexp; its binding holds the chunk's rows from
// params.delta_base on (row-stats.ts).

override BLOCK_M: u32 = 64u;

@group(0) @binding(5) var<storage, read> out: array<${T}>;
@group(0) @binding(6) var<storage, read> grad_out: array<${T}>;
@group(0) @binding(7) var<storage, read_write> delta: array<f32>;

@compute @workgroup_size(BLOCK_M)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
  // Global indices: a chunked dispatch (binding-chunks.ts) covers batch entries, heads and rows from its bases.
  let b = params.batch_base + wid.z;
  let h = params.head_base + wid.y;
  let sequence = load_sequence(b);
  let i = params.row_base + wid.x * BLOCK_M + lid;
  if (i >= min(sequence.q_len, params.row_end)) {
    return;
  }
  let o_base = params.o_offset + b * params.o_batch + h * params.o_head + (sequence.q_start + i) * params.o_seq;
  let g_base = params.g_offset + b * params.g_batch + h * params.g_head + (sequence.q_start + i) * params.g_seq;
  var sum = 0.0;
  for (var d = 0u; d < params.head_dim_v; d++) {
    sum += f32(out[o_base + d * params.o_dim]) * f32(grad_out[g_base + d * params.g_dim]);
  }
  delta[(b * params.q_heads + h) * params.query_length + i - params.delta_base] = sum;
}
