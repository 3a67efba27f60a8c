// The matrix backward's prologue in one dispatch (backward-prologue.ts): the padded copies of q, k, v and dO that
// its kernels load matrices from, and delta_i = Σ_d dO[i, d] · O[i, d]. Separately they took five dispatches, and at
// the seed shape each dispatch costs the GPU ~6–10 µs whatever it moves (bench notes, entry 37).
// Each copy is what padded-key-values.wgsl writes for rows of eights ([B, heads, padded_rows, padded_dims] f16,
// rows past the source's and dims past its dims zero; q's and k's NaN values as 0: `zero_nan`), into one buffer
// (`padded`, each copy from its `destination` chunk on). Sources are read in 16-byte chunks of 8 f16 (rows of
// eights only: every offset and stride a multiple of 8 elements, dims contiguous; padded dims a power of two, so a
// row's chunks are a shift away). The workgroups step through blocks of 1024 chunks (four per thread, consecutive
// threads taking consecutive chunks, all four loaded before any is stored), the copies' blocks one after another
// (dO first: its blocks, which also read O, take longest; then q, k, v; `first_block`). A block of dO also reads
// the same chunks of O and sums each whole row's products (a block holds 1024 / chunks-per-row whole rows) in the
// delta kernel's order (flash-backward-delta.wgsl: four dims at a time from dim 0, padded dims adding 0).

struct Copy {
  // The source's element (0, 0, 0, 0) and strides, in elements (multiples of 8).
  offset: u32,
  batch_stride: u32,
  head_stride: u32,
  row_stride: u32,
  heads: u32,
  // Source rows per head and dims, and the copy's.
  rows: u32,
  dims: u32,
  padded_rows: u32,
  padded_dims: u32,
  // The copy's first chunk in `padded`, and its first block.
  destination: u32,
  first_block: u32,
  // 1: NaN values are copied as 0.
  zero_nan: u32,
}

struct Params {
  copies: array<Copy, 4>,
  batches: u32,
  total_blocks: u32,
  // O: element (0, 0, 0, 0) and strides (multiples of 8).
  o_offset: u32,
  o_batch: u32,
  o_head: u32,
  o_row: u32,
  // delta is [batches, heads of dO, query_length] f32.
  query_length: u32,
  unused: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> q: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read> k: array<vec4<u32>>;
@group(0) @binding(3) var<storage, read> v: array<vec4<u32>>;
@group(0) @binding(4) var<storage, read> grad_out: array<vec4<u32>>;
@group(0) @binding(5) var<storage, read> out: array<vec4<u32>>;
@group(0) @binding(6) var<storage, read_write> padded: array<vec4<u32>>;
@group(0) @binding(7) var<storage, read_write> delta: array<f32>;

const THREADS: u32 = 256u;
const THREAD_CHUNKS: u32 = 4u;
const BLOCK_CHUNKS: u32 = THREADS * THREAD_CHUNKS;
const CHUNK_DIMS: u32 = 8u;
const GRAD_OUT_COPY: u32 = 0u;

// Per chunk of a dO block: its two four-dim products with O (dims 0–3, 4–7).
var<workgroup> chunk_products: array<vec2<f32>, BLOCK_CHUNKS>;

fn load_source(copy: u32, index: u32) -> vec4<u32> {
  switch copy {
    case 0u: {
      return grad_out[index];
    }
    case 1u: {
      return q[index];
    }
    case 2u: {
      return k[index];
    }
    default: {
      return v[index];
    }
  }
}

// The chunk with its NaN halves (exponent all ones, mantissa not 0) set to 0.
fn zero_nan_halves(chunk: vec4<u32>) -> vec4<u32> {
  let low_nan = (chunk & vec4<u32>(0x7fffu)) > vec4<u32>(0x7c00u);
  let high_nan = ((chunk >> vec4<u32>(16u)) & vec4<u32>(0x7fffu)) > vec4<u32>(0x7c00u);
  return chunk & (select(vec4<u32>(0xffffu), vec4<u32>(0u), low_nan) | select(vec4<u32>(0xffff0000u), vec4<u32>(0u), high_nan));
}

fn four_dims(word0: u32, word1: u32) -> vec4<f32> {
  return vec4<f32>(unpack2x16float(word0), unpack2x16float(word1));
}

@compute @workgroup_size(THREADS)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  // Grid-stride over the blocks (uniform: every thread runs every iteration).
  for (var block = wid.x; block < params.total_blocks; block += groups.x) {
    var c = 0u;
    for (var next = 1u; next < 4u; next++) {
      if (block >= params.copies[next].first_block) {
        c = next;
      }
    }
    let copy = params.copies[c];
    let chunks = copy.padded_dims / CHUNK_DIMS;
    let chunk_shift = countTrailingZeros(chunks);
    let total_chunks = params.batches * copy.heads * copy.padded_rows * chunks;
    let first = (block - copy.first_block) * BLOCK_CHUNKS;
    var values: array<vec4<u32>, THREAD_CHUNKS>;
    var products: array<vec2<f32>, THREAD_CHUNKS>;
    for (var t = 0u; t < THREAD_CHUNKS; t++) {
      let e = first + t * THREADS + lid;
      values[t] = vec4<u32>(0u);
      products[t] = vec2<f32>(0.0);
      let row = e >> chunk_shift;
      let d = (e & (chunks - 1u)) * CHUNK_DIMS;
      let batch_head = row / copy.padded_rows;
      let i = row % copy.padded_rows;
      let b = batch_head / copy.heads;
      let h = batch_head % copy.heads;
      if (e < total_chunks && i < copy.rows && d < copy.dims) {
        values[t] = load_source(c, (copy.offset + b * copy.batch_stride + h * copy.head_stride + i * copy.row_stride + d) / CHUNK_DIMS);
        if (c == GRAD_OUT_COPY) {
          let o = out[(params.o_offset + b * params.o_batch + h * params.o_head + i * params.o_row + d) / CHUNK_DIMS];
          let g = values[t];
          products[t] = vec2<f32>(dot(four_dims(o.x, o.y), four_dims(g.x, g.y)), dot(four_dims(o.z, o.w), four_dims(g.z, g.w)));
        }
      }
    }
    for (var t = 0u; t < THREAD_CHUNKS; t++) {
      let e = first + t * THREADS + lid;
      if (e < total_chunks) {
        padded[copy.destination + e] = select(values[t], zero_nan_halves(values[t]), copy.zero_nan == 1u);
      }
    }
    if (c == GRAD_OUT_COPY) {
      for (var t = 0u; t < THREAD_CHUNKS; t++) {
        chunk_products[t * THREADS + lid] = products[t];
      }
      workgroupBarrier();
      // A thread per row of the block sums its chunks' products in dim order.
      for (var r = lid; r < (BLOCK_CHUNKS >> chunk_shift); r += THREADS) {
        let row = (first >> chunk_shift) + r;
        let batch_head = row / copy.padded_rows;
        let i = row % copy.padded_rows;
        if (batch_head < params.batches * copy.heads && i < copy.rows) {
          var sum = 0.0;
          for (var x = 0u; x < chunks; x++) {
            let pair = chunk_products[r * chunks + x];
            sum += pair.x;
            sum += pair.y;
          }
          delta[batch_head * params.query_length + i] = sum;
        }
      }
      workgroupBarrier();
    }
  }
}
