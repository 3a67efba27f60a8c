// Philox 4x32-10, the same bits as philox.ts (element dropout). Twin functions: philox4x32, elementWord.

// High 32 bits of a · b from 16-bit halves (WGSL has no 64-bit product): a · b = a_hi b_hi 2^32 + (a_hi b_lo +
// a_lo b_hi) 2^16 + a_lo b_lo, carried so that every partial sum fits 32 bits (a is a Philox constant in every call,
// so its halves fold).
fn philox_mulhi(a: u32, b: u32) -> u32 {
  let a_lo = a & 0xffffu;
  let a_hi = a >> 16u;
  let b_lo = b & 0xffffu;
  let b_hi = b >> 16u;
  let low = a_hi * b_lo + ((a_lo * b_lo) >> 16u);
  let middle = a_lo * b_hi + (low & 0xffffu);
  return a_hi * b_hi + (low >> 16u) + (middle >> 16u);
}

// One Philox round on counter c with round key k.
fn philox_round(c: vec4<u32>, k: vec2<u32>) -> vec4<u32> {
  let hi0 = philox_mulhi(0xd2511f53u, c.x);
  let lo0 = 0xd2511f53u * c.x;
  let hi1 = philox_mulhi(0xcd9e8d57u, c.z);
  let lo1 = 0xcd9e8d57u * c.z;
  return vec4<u32>(hi1 ^ c.y ^ k.x, lo1, hi0 ^ c.w ^ k.y, lo0);
}

const PHILOX_KEY_STEP: vec2<u32> = vec2<u32>(0x9e3779b9u, 0xbb67ae85u);

// A constant number of rounds (a round count passed as a parameter made the f32 flash kernels with dropout 3-6x
// slower on the H100 when they still drew Philox: bench notes, entry 17).
fn philox4x32(counter: vec4<u32>, key: vec2<u32>) -> vec4<u32> {
  var c = counter;
  var k = key;
  for (var round = 0u; round < 10u; round++) {
    c = philox_round(c, k);
    k += PHILOX_KEY_STEP;
  }
  return c;
}

fn element_word(key: vec2<u32>, offset: u32, index: u32) -> u32 {
  return philox4x32(vec4<u32>(index >> 2u, 0u, 0xffffffffu, offset), key)[index & 3u];
}
