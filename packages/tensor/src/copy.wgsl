// Strided copy of any dtype, bit for bit: each invocation writes one 32-bit word of the contiguous output,
// that is 4 / element_bytes elements (1 for f32, 2 for f16, 4 for bool). Source elements are read from their
// byte position, so one kernel serves every dtype. Shapes and strides (rank <= 6, padded with size 1) are uniforms.

${UNIFORMS}

@group(0) @binding(0) var<storage, read> source: array<u32>;
@group(0) @binding(1) var<storage, read_write> destination: array<u32>;
@group(0) @binding(2) var<uniform> u: Uniforms;

fn size_of(dim: u32) -> u32 {
  switch dim {
    case 0u: { return u.size0; }
    case 1u: { return u.size1; }
    case 2u: { return u.size2; }
    case 3u: { return u.size3; }
    case 4u: { return u.size4; }
    default: { return u.size5; }
  }
}

fn stride_of(dim: u32) -> u32 {
  switch dim {
    case 0u: { return u.stride0; }
    case 1u: { return u.stride1; }
    case 2u: { return u.stride2; }
    case 3u: { return u.stride3; }
    case 4u: { return u.stride4; }
    default: { return u.stride5; }
  }
}

fn source_bits(index: u32) -> u32 {
  var rest = index;
  var element = u.offset;
  for (var dim = 5i; dim >= 0i; dim--) {
    let size = size_of(u32(dim));
    element += (rest % size) * stride_of(u32(dim));
    rest = rest / size;
  }
  let byte = element * u.element_bytes;
  let word = source[byte >> 2u];
  let bits = u.element_bytes * 8u;
  if (bits == 32u) {
    return word;
  }
  return (word >> ((byte & 3u) * 8u)) & ((1u << bits) - 1u);
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let word_index = gid.x + gid.y * groups.x * 64u;
  let per_word = 4u / u.element_bytes;
  let first = word_index * per_word;
  if (first >= u.count) {
    return;
  }
  var word = 0u;
  for (var i = 0u; i < per_word; i++) {
    if (first + i < u.count) {
      word |= source_bits(first + i) << (i * u.element_bytes * 8u);
    }
  }
  destination[word_index] = word;
}
