// Split-KV pass 2: merges the splits of one (row, head, batch): m = max m_s, l = Σ l_s e^{m_s − m},
// out = Σ acc_s e^{m_s − m} / l, logsumexp = m + log l (out 0 and −∞ for a row without any allowed key), and with
// params.lse_residual the rounding residual (m − logsumexp) + log l like flash-forward.wgsl. A split whose l is
// NaN (a NaN score, split-kv-partial.wgsl) makes the row NaN. One workgroup per row of the chunk's rows
// [row_base, row_end); the logsumexp binding holds the chunk's rows from params.lse_base on (row-stats.ts).

override THREADS: u32 = 64u;

@group(0) @binding(5) var<storage, read> partial_stats: array<f32>;
@group(0) @binding(6) var<storage, read> partial_out: array<f32>;
@group(0) @binding(7) var<storage, read_write> out: array<${T}>;
@group(0) @binding(8) var<storage, read_write> logsumexp: array<f32>;

@compute @workgroup_size(THREADS)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
  // Global indices (chunk bases, binding-chunks.ts); the partials are indexed within the chunk.
  let i = params.row_base + wid.x;
  let h = params.head_base + wid.y;
  let b = params.batch_base + wid.z;
  let sequence = load_sequence(b);
  let negative_infinity = params.negative_infinity;
  let row = (b * params.q_heads + h) * params.query_length + i - params.lse_base;
  if (i >= sequence.q_len) {
    // Packed varlen: rows past this sequence's end get logsumexp −∞ (like the reference and the flash forward).
    if (lid == 0u) {
      logsumexp[row] = negative_infinity;
    }
    return;
  }
  let row_count = params.row_end - params.row_base;
  let first = ((wid.z * params.head_count + wid.y) * row_count + wid.x) * params.split_count;
  var m = negative_infinity;
  for (var s = 0u; s < params.split_count; s++) {
    m = max(m, partial_stats[(first + s) * 2u]);
  }
  var l = 0.0;
  var poisoned = false;
  for (var s = 0u; s < params.split_count; s++) {
    poisoned = poisoned || is_nan(partial_stats[(first + s) * 2u + 1u]);
    let m_s = partial_stats[(first + s) * 2u];
    if (m_s > negative_infinity) {
      l += partial_stats[(first + s) * 2u + 1u] * exp(m_s - m);
    }
  }
  let inverse = select(0.0, 1.0 / l, l > 0.0);
  let o_base = params.o_offset + b * params.o_batch + h * params.o_head + (sequence.q_start + i) * params.o_seq;
  for (var d = lid; d < params.head_dim_v; d += THREADS) {
    var acc = 0.0;
    for (var s = 0u; s < params.split_count; s++) {
      let m_s = partial_stats[(first + s) * 2u];
      if (m_s > negative_infinity) {
        acc += partial_out[(first + s) * params.head_dim_v + d] * exp(m_s - m);
      }
    }
    out[o_base + d * params.o_dim] = select(${T}(acc * inverse), nan_stored(), poisoned);
  }
  if (lid == 0u) {
    let log_sum = log(l);
    let lse = m + log_sum;
    logsumexp[row] = select(select(negative_infinity, lse, l > 0.0), nan_f32(), poisoned);
    if (params.lse_residual == 1u) {
      // See flash-forward.wgsl: the XOR with a uniform zero keeps compilers from folding the residual to 0.
      let stored = bitcast<f32>(bitcast<u32>(lse) ^ params.opaque_zero);
      logsumexp[params.lse_count + row] = select(0.0, (m - stored) + log_sum, l > 0.0);
    }
  }
}
