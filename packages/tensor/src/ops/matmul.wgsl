// Batched C = A · B in f32: A [batch, M, K] and B [batch, K, N] read through strides (so transposed and permuted
// views cost nothing), C dense [batch, M, N]. Each 16×16 workgroup computes a 64×64 tile of C, 4×4 outputs per
// invocation, staging 64×16 of A and 16×64 of B in workgroup memory per step along K. Batch dims (up to 4,
// broadcast by stride 0) are uniforms.

${UNIFORMS}

const TILE = 64u;
const TILE_K = 16u;

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> c: array<f32>;
@group(0) @binding(3) var<uniform> u: Uniforms;

// Padded strides (17, 65) keep workgroup-memory stores free of bank conflicts whichever way a tile is loaded.
const A_STRIDE = 17u;
const B_STRIDE = 65u;
var<workgroup> tile_a: array<f32, 1088>; // [TILE][A_STRIDE]: row m, column k
var<workgroup> tile_b: array<f32, 1040>; // [TILE_K][B_STRIDE]: row k, column n

@compute @workgroup_size(16, 16)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
  let batch = wid.z + u.batch_start;
  // Batch offsets: batch index → (b0, b1, b2, b3) over the broadcast batch shape.
  var rest = batch;
  var a_base = u.a_offset;
  var b_base = u.b_offset;
  var index = rest % u.batch3;
  rest = rest / u.batch3;
  a_base += index * u.a_batch3;
  b_base += index * u.b_batch3;
  index = rest % u.batch2;
  rest = rest / u.batch2;
  a_base += index * u.a_batch2;
  b_base += index * u.b_batch2;
  index = rest % u.batch1;
  rest = rest / u.batch1;
  a_base += index * u.a_batch1;
  b_base += index * u.b_batch1;
  a_base += rest * u.a_batch0;
  b_base += rest * u.b_batch0;

  let row0 = wid.y * TILE;
  let col0 = wid.x * TILE;
  let thread = lid.y * 16u + lid.x;
  // Neighbouring invocations read neighbouring memory: along k when that is the unit stride, else along m / n.
  let a_along_k = u.a_col == 1u;
  let b_along_k = u.b_row == 1u && u.b_col != 1u;
  var acc: array<f32, 16>;
  for (var i = 0u; i < 16u; i++) {
    acc[i] = 0.0;
  }
  for (var k0 = 0u; k0 < u.k; k0 += TILE_K) {
    for (var i = 0u; i < 4u; i++) {
      let e = thread + i * 256u;
      var m = e % TILE;
      var ka = e / TILE;
      if (a_along_k) {
        m = e / TILE_K;
        ka = e % TILE_K;
      }
      var value = 0.0;
      if (row0 + m < u.m && k0 + ka < u.k) {
        value = a[a_base + (row0 + m) * u.a_row + (k0 + ka) * u.a_col];
      }
      tile_a[m * A_STRIDE + ka] = value;
      var kb = e / TILE;
      var n = e % TILE;
      if (b_along_k) {
        kb = e % TILE_K;
        n = e / TILE_K;
      }
      value = 0.0;
      if (k0 + kb < u.k && col0 + n < u.n) {
        value = b[b_base + (k0 + kb) * u.b_row + (col0 + n) * u.b_col];
      }
      tile_b[kb * B_STRIDE + n] = value;
    }
    workgroupBarrier();
    for (var k = 0u; k < TILE_K; k++) {
      var av: array<f32, 4>;
      var bv: array<f32, 4>;
      for (var i = 0u; i < 4u; i++) {
        av[i] = tile_a[(lid.y + 16u * i) * A_STRIDE + k];
        bv[i] = tile_b[k * B_STRIDE + lid.x + 16u * i];
      }
      for (var i = 0u; i < 4u; i++) {
        for (var j = 0u; j < 4u; j++) {
          acc[i * 4u + j] = fma(av[i], bv[j], acc[i * 4u + j]);
        }
      }
    }
    workgroupBarrier();
  }
  let c_base = batch * u.m * u.n;
  for (var i = 0u; i < 4u; i++) {
    let row = row0 + lid.y + 16u * i;
    for (var j = 0u; j < 4u; j++) {
      let col = col0 + lid.x + 16u * j;
      if (row < u.m && col < u.n) {
        c[c_base + row * u.n + col] = acc[i * 4u + j];
      }
    }
  }
}
