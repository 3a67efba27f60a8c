// dK/dV of one kv head whose query rows did not fit one storage binding: flash-backward-key-value.wgsl summed
// them in f32 scratch (the keys [key_base, key_end) as [keys, Dqk] and [keys, Dv], contiguous) over several
// dispatches; this writes them to dk and dv in their layouts and dtype, one thread per key (NaN sums as a quiet
// NaN of the storage type).

override THREADS: u32 = 64u;

@group(0) @binding(5) var<storage, read> dk_partial: array<f32>;
@group(0) @binding(6) var<storage, read> dv_partial: array<f32>;
@group(0) @binding(7) var<storage, read_write> dk: array<${T}>;
@group(0) @binding(8) var<storage, read_write> dv: array<${T}>;

@compute @workgroup_size(THREADS)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
  let b = params.batch_base;
  let kv_head = params.head_base;
  let j = params.key_base + wid.x * THREADS + lid;
  let sequence = load_sequence(b);
  if (j >= min(sequence.k_len, params.key_end)) {
    return;
  }
  let scratch_row = j - params.key_base;
  let dk_address = params.dk_offset + b * params.dk_batch + kv_head * params.dk_head + (sequence.k_start + j) * params.dk_seq;
  let dv_address = params.dv_offset + b * params.dv_batch + kv_head * params.dv_head + (sequence.k_start + j) * params.dv_seq;
  for (var d = 0u; d < params.head_dim_qk; d++) {
    let value = dk_partial[scratch_row * params.head_dim_qk + d];
    dk[dk_address + d * params.dk_dim] = select(${T}(value), nan_stored(), is_nan(value));
  }
  for (var d = 0u; d < params.head_dim_v; d++) {
    let value = dv_partial[scratch_row * params.head_dim_v + d];
    dv[dv_address + d * params.dv_dim] = select(${T}(value), nan_stored(), is_nan(value));
  }
}
