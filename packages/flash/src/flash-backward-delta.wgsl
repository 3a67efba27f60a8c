// Backward preprocessing: delta_i = Σ_d dO[i, d] · O[i, d] (f32), one thread per query row, its row read as vec4s in
// a loop over the head-dim bucket that the compiler can unroll (the seed shape's delta 21 → 15 µs on an H200 against
// a scalar loop over the runtime head dim: bench notes, entry 35). gradOut has its own layout (params.g_*). delta is
// [B, Hq, L] like the logsumexp; its binding holds the chunk's rows from params.delta_base on (row-stats.ts).

override BLOCK_M: u32 = 64u;
const V4: u32 = ${HEAD_DIM_V}u / 4u;

// Row buffers as array<f32 or f16>, or as array<vec4<f32>> where their rows allow (vec4-loaders.ts).
@group(0) @binding(5) var<storage, read> out: array<${OUT_ELEMENT}>;
@group(0) @binding(6) var<storage, read> grad_out: array<${GRAD_OUT_ELEMENT}>;
@group(0) @binding(7) var<storage, read_write> delta: array<f32>;

// load_out4, load_grad_out4 (vec4-loaders.ts): elements d..d+3 of a row, zero at and past `dim`.
${VEC4_LOADERS}
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
  for (var d4 = 0u; d4 < V4; d4++) {
    let d = d4 * 4u;
    sum += dot(load_out4(o_base, d, params.head_dim_v, params.o_dim), load_grad_out4(g_base, d, params.head_dim_v, params.g_dim));
  }
  delta[(b * params.q_heads + h) * params.query_length + i - params.delta_base] = sum;
}
