// The score of attention element (b, h, i, j), shared by the forward scores kernel and the backward kernel.
// The including kernel declares q_data, k_data, mask_data, sequences and `u` (AttentionUniforms).
// Scores of removed elements are MASKED; anything at or below MASKED_LIMIT (including −∞ from an additive
// mask) counts as removed.

const MASKED: f32 = -3.0e38;
const MASKED_LIMIT: f32 = -1.0e38;

struct Sequence {
  q_start: u32,
  q_rows: u32,
  k_start: u32,
  k_rows: u32,
  k_valid: u32,
  shift: i32,
}

fn sequence_of(b: u32) -> Sequence {
  let base = b * 6u;
  return Sequence(sequences[base], sequences[base + 1u], sequences[base + 2u], sequences[base + 3u],
                  sequences[base + 4u], bitcast<i32>(sequences[base + 5u]));
}

#if F16
fn load_q(index: u32) -> f32 { return unpack2x16float(q_data[index >> 1u])[index & 1u]; }
fn load_k(index: u32) -> f32 { return unpack2x16float(k_data[index >> 1u])[index & 1u]; }
#else
fn load_q(index: u32) -> f32 { return q_data[index]; }
fn load_k(index: u32) -> f32 { return k_data[index]; }
#endif

#if MASK_F16
fn load_mask(index: u32) -> f32 { return unpack2x16float(mask_data[index >> 1u])[index & 1u]; }
#elif MASK_ADDITIVE
fn load_mask(index: u32) -> f32 { return mask_data[index]; }
#endif

// (score, d score / d raw score): MASKED when (i, j) is removed by bounds, causal, window or a mask.
fn attention_score(b: u32, h: u32, i: u32, j: u32, s: Sequence) -> vec2<f32> {
  _ = arrayLength(&mask_data); // keeps the mask binding in the layout when there is no mask
  if (i >= s.q_rows || j >= s.k_valid) { return vec2<f32>(MASKED, 0.0); }
  let position = i32(i) + s.shift;
  let column = i32(j);
  if (u.causal != 0u && column > position) { return vec2<f32>(MASKED, 0.0); }
  if (u.window_left >= 0 && column < position - u.window_left) { return vec2<f32>(MASKED, 0.0); }
  if (u.window_right >= 0 && column > position + u.window_right) { return vec2<f32>(MASKED, 0.0); }
  let mask_index = u.mask_offset + b * u.mask_batch + h * u.mask_head + i * u.mask_row + j * u.mask_column;
#if MASK_BOOL
  let mask_byte = (mask_data[mask_index >> 2u] >> (8u * (mask_index & 3u))) & 0xffu;
  if (mask_byte == 0u) { return vec2<f32>(MASKED, 0.0); }
#endif
  let kv_head = h * u.kv_heads / u.query_heads;
  let q_base = u.q_offset + b * u.q_batch + h * u.q_head + (s.q_start + i) * u.q_sequence;
  let k_base = u.k_offset + b * u.k_batch + kv_head * u.k_head + (s.k_start + j) * u.k_sequence;
  var dot = 0.0;
  for (var d = 0u; d < u.head_dim_qk; d++) {
    dot += load_q(q_base + d * u.q_dim) * load_k(k_base + d * u.k_dim);
  }
  var score = u.scale * dot;
  var slope = 1.0;
  if (u.softcap > 0.0) {
    let t = tanh(score / u.softcap);
    score = u.softcap * t;
    slope = 1.0 - t * t;
  }
#if MASK_ADDITIVE
  score += load_mask(mask_index);
#endif
  if (score <= MASKED_LIMIT) { return vec2<f32>(MASKED, 0.0); }
  return vec2<f32>(score, slope);
}
