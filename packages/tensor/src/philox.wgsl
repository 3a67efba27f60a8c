// Philox 4x32-10, the same bits as philox.ts. Twin functions: philox4x32, attentionDropoutWord, elementWord.

fn philox_mulhi(a: u32, b: u32) -> u32 {
  let a_lo = a & 0xffffu;
  let a_hi = a >> 16u;
  let b_lo = b & 0xffffu;
  let b_hi = b >> 16u;
  let lolo = a_lo * b_lo;
  let lohi = a_lo * b_hi;
  let hilo = a_hi * b_lo;
  let hihi = a_hi * b_hi;
  let cross = (lolo >> 16u) + (lohi & 0xffffu) + (hilo & 0xffffu);
  return hihi + (lohi >> 16u) + (hilo >> 16u) + (cross >> 16u);
}

fn philox4x32(counter: vec4<u32>, key: vec2<u32>) -> vec4<u32> {
  var c = counter;
  var k = key;
  for (var round = 0u; round < 10u; round++) {
    let hi0 = philox_mulhi(0xd2511f53u, c.x);
    let lo0 = 0xd2511f53u * c.x;
    let hi1 = philox_mulhi(0xcd9e8d57u, c.z);
    let lo1 = 0xcd9e8d57u * c.z;
    c = vec4<u32>(hi1 ^ c.y ^ k.x, lo1, hi0 ^ c.w ^ k.y, lo0);
    k = k + vec2<u32>(0x9e3779b9u, 0xbb67ae85u);
  }
  return c;
}

// Four random words for attention columns 4*column_group .. 4*column_group+3 of (batch_head, row).
fn attention_dropout_words(key: vec2<u32>, offset: u32, batch_head: u32, row: u32, column_group: u32) -> vec4<u32> {
  return philox4x32(vec4<u32>(column_group, row, batch_head, offset), key);
}

fn attention_dropout_word(key: vec2<u32>, offset: u32, batch_head: u32, row: u32, column: u32) -> u32 {
  return attention_dropout_words(key, offset, batch_head, row, column >> 2u)[column & 3u];
}

fn element_word(key: vec2<u32>, offset: u32, index: u32) -> u32 {
  return philox4x32(vec4<u32>(index >> 2u, 0u, 0xffffffffu, offset), key)[index & 3u];
}
