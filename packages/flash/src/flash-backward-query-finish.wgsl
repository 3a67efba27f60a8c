// dQ of rows whose keys did not fit one storage binding: flash-backward-query.wgsl summed it over the key chunks in
// f32 scratch (layout params.s_*); this writes the chunk's rows to dq in its layout and dtype, one thread per row
// (NaN sums as a quiet NaN of the storage type).

override THREADS: u32 = 64u;

@group(0) @binding(5) var<storage, read> dq_partial: array<f32>;
@group(0) @binding(6) var<storage, read_write> dq: array<${T}>;

@compute @workgroup_size(THREADS)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
  // Global indices: a chunked dispatch (binding-chunks.ts) covers batch entries, heads and rows from its bases.
  let b = params.batch_base + wid.z;
  let h = params.head_base + wid.y;
  let i = params.row_base + wid.x * THREADS + lid;
  let sequence = load_sequence(b);
  if (i >= min(sequence.q_len, params.row_end)) {
    return;
  }
  let s_address = params.s_offset + b * params.s_batch + h * params.s_head + (sequence.q_start + i) * params.s_seq;
  let dq_address = params.dq_offset + b * params.dq_batch + h * params.dq_head + (sequence.q_start + i) * params.dq_seq;
  for (var d = 0u; d < params.head_dim_qk; d++) {
    let value = dq_partial[s_address + d * params.s_dim];
    dq[dq_address + d * params.dq_dim] = select(${T}(value), nan_stored(), is_nan(value));
  }
}
