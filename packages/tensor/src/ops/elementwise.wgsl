// Every elementwise op in one kernel: up to three broadcast, strided inputs of any dtype (or scalars from the
// uniforms) and one contiguous output. The op and the element sizes are override constants; shapes and strides
// (rank <= 6, padded with leading size-1 dims) are uniforms. Each invocation writes whole 32-bit output words
// (1 f32, 2 f16 or 4 bool elements), so f16 and bool outputs need no atomics. Math runs in f32.
// The dropout variant (flag DROPOUT) is composed after PHILOX_WGSL; the others leave Philox out.

${UNIFORMS}

override OP: u32 = 0u;
// Bytes per element of each input: 4 f32, 2 f16, 1 bool; 0 means "the scalar u.scalar_x".
override BYTES_A: u32 = 4u;
override BYTES_B: u32 = 0u;
override BYTES_C: u32 = 0u;
override OUT_BYTES: u32 = 4u;
// An input is dense when its element for output position i is simply offset + i (no index arithmetic needed).
override DENSE_A: bool = false;
override DENSE_B: bool = false;
override DENSE_C: bool = false;

@group(0) @binding(0) var<storage, read> input_a: array<u32>;
@group(0) @binding(1) var<storage, read> input_b: array<u32>;
@group(0) @binding(2) var<storage, read> input_c: array<u32>;
@group(0) @binding(3) var<storage, read_write> output: array<u32>;
@group(0) @binding(4) var<uniform> u: Uniforms;

fn decode(word: u32, element: u32, bytes: u32) -> f32 {
  if (bytes == 4u) {
    return bitcast<f32>(word);
  }
  if (bytes == 2u) {
    return unpack2x16float(word)[element & 1u];
  }
  return f32((word >> ((element & 3u) * 8u)) & 0xffu);
}

fn load_a(element: u32) -> f32 {
  if (BYTES_A == 0u) {
    return u.scalar_a;
  }
  return decode(input_a[(element * BYTES_A) >> 2u], element, BYTES_A);
}

fn load_b(element: u32) -> f32 {
  if (BYTES_B == 0u) {
    return u.scalar_b;
  }
  return decode(input_b[(element * BYTES_B) >> 2u], element, BYTES_B);
}

fn load_c(element: u32) -> f32 {
  if (BYTES_C == 0u) {
    return u.scalar_c;
  }
  return decode(input_c[(element * BYTES_C) >> 2u], element, BYTES_C);
}

// Element offsets of output position `index` in the three inputs.
fn offsets(index: u32) -> vec3<u32> {
  var rest = index;
  var at = vec3<u32>(u.offset_a, u.offset_b, u.offset_c);
  var c = rest % u.size5;
  rest = rest / u.size5;
  at += c * vec3<u32>(u.stride_a5, u.stride_b5, u.stride_c5);
  c = rest % u.size4;
  rest = rest / u.size4;
  at += c * vec3<u32>(u.stride_a4, u.stride_b4, u.stride_c4);
  c = rest % u.size3;
  rest = rest / u.size3;
  at += c * vec3<u32>(u.stride_a3, u.stride_b3, u.stride_c3);
  c = rest % u.size2;
  rest = rest / u.size2;
  at += c * vec3<u32>(u.stride_a2, u.stride_b2, u.stride_c2);
  c = rest % u.size1;
  rest = rest / u.size1;
  at += c * vec3<u32>(u.stride_a1, u.stride_b1, u.stride_c1);
  at += rest * vec3<u32>(u.stride_a0, u.stride_b0, u.stride_c0);
  return at;
}

// erf by Abramowitz & Stegun 7.1.26 (absolute error < 1.5e-7, below f32 resolution of gelu's result).
fn erf_approx(x: f32) -> f32 {
  let t = 1.0 / (1.0 + 0.3275911 * abs(x));
  let poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
  return sign(x) * (1.0 - poly * exp(-x * x));
}

fn gelu(x: f32) -> f32 {
  return 0.5 * x * (1.0 + erf_approx(x * 0.7071067811865476));
}

fn gelu_derivative(x: f32) -> f32 {
  let cdf = 0.5 * (1.0 + erf_approx(x * 0.7071067811865476));
  return cdf + x * exp(-0.5 * x * x) * 0.3989422804014327;
}

fn apply(a: f32, b: f32, c: f32, index: u32) -> f32 {
  switch OP {
    case 1u: { return -a; }
    case 2u: { return exp(a); }
    case 3u: { return log(a); }
    case 4u: { return sqrt(a); }
    case 5u: { return max(a, 0.0); }
    case 6u: { return gelu(a); }
    case 7u: { return a * u.alpha; }
    case 10u: { return a + b; }
    case 11u: { return a - b; }
    case 12u: { return a * b; }
    case 13u: { return a / b; }
    case 14u: { return select(0.0, a, b > 0.0); }
    case 15u: { return a * gelu_derivative(b); }
    case 20u: { return select(c, b, a != 0.0); }
#if DROPOUT
    case 30u: {
      let word = element_word(vec2<u32>(u.key0, u.key1), u.philox_offset, index);
      return select(0.0, a * u.alpha, word >= u.threshold);
    }
#endif
    default: { return a; }
  }
}

// IEEE half bits of x, round to nearest even; overflow gives ±inf and NaN stays NaN (pack2x16float leaves
// out-of-range values undefined).
fn half_bits(x: f32) -> u32 {
  let bits = bitcast<u32>(x);
  let sign_bit = (bits >> 16u) & 0x8000u;
  if ((bits & 0x7fffffffu) > 0x7f800000u) {
    return sign_bit | 0x7e00u;
  }
  if (abs(x) >= 65520.0) {
    return sign_bit | 0x7c00u;
  }
  return pack2x16float(vec2<f32>(x, 0.0)) & 0xffffu;
}

fn value_at(index: u32) -> f32 {
  var at = vec3<u32>(u.offset_a, u.offset_b, u.offset_c) + index;
  if (!(DENSE_A && DENSE_B && DENSE_C)) {
    let strided = offsets(index);
    at = select(strided, at, vec3<bool>(DENSE_A, DENSE_B, DENSE_C));
  }
  return apply(load_a(at.x), load_b(at.y), load_c(at.z), index);
}

const WORDS_PER_THREAD = 4u;

fn write_word(word_index: u32) {
  let per_word = 4u / OUT_BYTES;
  let first = word_index * per_word;
  if (first >= u.count) {
    return;
  }
  var word = 0u;
  if (OUT_BYTES == 4u) {
    word = bitcast<u32>(value_at(first));
  } else if (OUT_BYTES == 2u) {
    var high = 0.0;
    if (first + 1u < u.count) {
      high = value_at(first + 1u);
    }
    word = half_bits(value_at(first)) | (half_bits(high) << 16u);
  } else {
    for (var i = 0u; i < 4u; i++) {
      if (first + i < u.count && value_at(first + i) != 0.0) {
        word |= 1u << (i * 8u);
      }
    }
  }
  output[word_index] = word;
}

// Each workgroup writes 64 · WORDS_PER_THREAD consecutive words; neighbouring invocations write neighbouring words.
@compute @workgroup_size(64)
fn main(
  @builtin(local_invocation_id) lid: vec3<u32>,
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) groups: vec3<u32>,
) {
  let base = (wid.x + wid.y * groups.x) * 64u * WORDS_PER_THREAD + lid.x;
  for (var i = 0u; i < WORDS_PER_THREAD; i++) {
    write_word(base + i * 64u);
  }
}
