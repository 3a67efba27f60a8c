// The attention dropout stream, the same bits as attention-dropout.ts: pcg4d (Jarzynski and Olano, "Hash Functions
// for GPU Rendering", JCGT 2020) of (key octet, row, batch·head, 0) xor the call's 128-bit stream key, which the host
// draws with Philox 4×32-10 from the seed and offset (attentionDropoutStream), then each word xor itself >> 16.
// Eight 16-bit values per draw. Twin functions: pcg4d, attentionDropoutDraw, attentionDropoutWord.

fn pcg4d(input: vec4<u32>) -> vec4<u32> {
  var v = input * 1664525u + 1013904223u;
  v.x += v.y * v.w;
  v.y += v.z * v.x;
  v.z += v.x * v.y;
  v.w += v.y * v.z;
  v ^= v >> vec4<u32>(16u);
  v.x += v.y * v.w;
  v.y += v.z * v.x;
  v.z += v.x * v.y;
  v.w += v.y * v.z;
  return v;
}

// The draw for attention columns 8·column_octet .. + 7 of (batch_head, row): column c's 16-bit value is half c & 1
// (low first) of word c >> 1. (pcg4d's low bits depend only on its inputs' low bits; the final shift gives the low
// halves the high bits' mixing.)
fn attention_dropout_draw(stream: vec4<u32>, batch_head: u32, row: u32, column_octet: u32) -> vec4<u32> {
  let hash = pcg4d(vec4<u32>(column_octet, row, batch_head, 0u) ^ stream);
  return hash ^ (hash >> vec4<u32>(16u));
}

// The values of columns 4·quad .. 4·quad + 3 of a draw (quad 0 or 1).
fn attention_dropout_values(draw: vec4<u32>, quad: u32) -> vec4<u32> {
  let low = select(draw.x, draw.z, quad == 1u);
  let high = select(draw.y, draw.w, quad == 1u);
  return vec4<u32>(low & 0xffffu, low >> 16u, high & 0xffffu, high >> 16u);
}

// The values for attention columns 4·column_group .. 4·column_group + 3 of (batch_head, row) (compared with the
// 16-bit attentionDropoutThreshold).
fn attention_dropout_words(stream: vec4<u32>, batch_head: u32, row: u32, column_group: u32) -> vec4<u32> {
  return attention_dropout_values(attention_dropout_draw(stream, batch_head, row, column_group >> 1u), column_group & 1u);
}

fn attention_dropout_word(stream: vec4<u32>, batch_head: u32, row: u32, column: u32) -> u32 {
  return attention_dropout_words(stream, batch_head, row, column >> 2u)[column & 3u];
}
