// Copies k or v (any element strides) into a contiguous f16 buffer [B, Hkv, padded_rows, padded_dims] for the
// subgroup-matrix forward's direct loads (padded-key-values.ts): every head's keys padded with zero rows to a whole
// number of key tiles and its dims with zeros to the compiled head dim, so a matrix load of any attended tile stays
// inside the head's rows. With ZERO_NAN NaN values are copied as 0 (k for the matrix dQ kernel, whose dS · K must
// not meet a NaN key at a zero dS). With SCAN_NAN (v for the forward) NaN and infinite values are copied as 0 and
// recorded in nan_flags, 32
// rows per group of 1 + 64 · DIM_WORDS words: a summary word (bit r: row r of the group has such a value), then per
// row DIM_WORDS words of the dims holding NaN or +∞ and DIM_WORDS of those holding NaN or −∞
// (flash-forward-matrix.wgsl reads them). With VARLEN the source is packed ([total, heads, dims], sequence b's keys
// from cu_seqlens[b]): its sequences are unpacked into the batch entries of the copy, each padded like a head of a
// dense source (the kernels then address every sequence's keys from row 0 of its heads). A workgroup copies groups
// of 32 rows (grid-stride). With VEC4 (rows of contiguous dims, every offset and stride a multiple of 4 elements)
// each thread copies 4 dims at a time.

${UNIFORMS}
@group(0) @binding(0) var<uniform> params: Params;
#if VEC4
@group(0) @binding(1) var<storage, read> source: array<vec4<f16>>;
@group(0) @binding(2) var<storage, read_write> padded: array<vec4<f16>>;
const WIDTH: u32 = 4u;
#else
@group(0) @binding(1) var<storage, read> source: array<f16>;
@group(0) @binding(2) var<storage, read_write> padded: array<f16>;
const WIDTH: u32 = 1u;
#endif
#if VARLEN
@group(0) @binding(4) var<storage, read> cu_seqlens: array<u32>;
#endif
#if SCAN_NAN
@group(0) @binding(3) var<storage, read_write> nan_flags: array<u32>;

const MAX_DIM_WORDS: u32 = 4u;
var<workgroup> row_nan_dims: array<atomic<u32>, 32u * 2u * MAX_DIM_WORDS>;
var<workgroup> group_nan_rows: atomic<u32>;
#endif

const THREADS: u32 = 256u;
const GROUP_ROWS: u32 = 32u;

@compute @workgroup_size(THREADS)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let dims = params.padded_dims;
  let total_rows = params.batches * params.heads * params.padded_rows;
  let row_groups = (total_rows + GROUP_ROWS - 1u) / GROUP_ROWS;
  for (var group = wid.x; group < row_groups; group += groups.x) {
    for (var e = lid * WIDTH; e < GROUP_ROWS * dims; e += THREADS * WIDTH) {
      let group_row = e / dims;
      let row = group * GROUP_ROWS + group_row;
      let d = e % dims;
      if (row >= total_rows) {
        break;
      }
      let batch_head = row / params.padded_rows;
      let key = row % params.padded_rows;
      let b = batch_head / params.heads;
      let h = batch_head % params.heads;
      // The sequence's first key row in the source and its keys.
      var first = 0u;
      var keys = params.keys;
#if VARLEN
      first = cu_seqlens[b];
      keys = min(cu_seqlens[b + 1u] - first, params.keys);
#endif
      var values = vec4<f16>(0.0);
      // With VEC4 params.dims is a multiple of 4: the 4 dims are all inside the row or all past it.
      if (key < keys && d < params.dims) {
        let index = params.offset + b * params.batch_stride + h * params.head_stride + (first + key) * params.key_stride + d * params.dim_stride;
#if VEC4
        values = source[index / 4u];
#else
        values.x = source[index];
#endif
        for (var t = 0u; t < WIDTH; t++) {
          let bits = bitcast<u32>(f32(values[t]));
#if ZERO_NAN
          if ((bits & 0x7fffffffu) > 0x7f800000u) {
            values[t] = f16(0.0);
          }
#endif
#if SCAN_NAN
          if ((bits & 0x7fffffffu) >= 0x7f800000u) {
            let nan = (bits & 0x7fffffffu) > 0x7f800000u;
            let dim = d + t;
            let words = group_row * 2u * MAX_DIM_WORDS + dim / 32u;
            if (nan || bits == 0x7f800000u) {
              atomicOr(&row_nan_dims[words], 1u << (dim % 32u));
            }
            if (nan || bits == 0xff800000u) {
              atomicOr(&row_nan_dims[words + MAX_DIM_WORDS], 1u << (dim % 32u));
            }
            atomicOr(&group_nan_rows, 1u << group_row);
            values[t] = f16(0.0);
          }
#endif
        }
      }
#if VEC4
      padded[(row * dims + d) / 4u] = values;
#else
      padded[row * dims + d] = values.x;
#endif
    }
#if SCAN_NAN
    workgroupBarrier();
    let dim_words = (dims + 31u) / 32u;
    let group_base = group * (1u + GROUP_ROWS * 2u * dim_words);
    if (lid < GROUP_ROWS * 2u * dim_words) {
      // Word w of row r's 2 · dim_words (positive dims first, then negative).
      let r = lid / (2u * dim_words);
      let w = lid % (2u * dim_words);
      let sign = w / dim_words;
      nan_flags[group_base + 1u + lid] = atomicExchange(&row_nan_dims[(r * 2u + sign) * MAX_DIM_WORDS + w % dim_words], 0u);
    }
    workgroupBarrier();
    if (lid == 0u) {
      nan_flags[group_base] = atomicExchange(&group_nan_rows, 0u);
    }
    workgroupBarrier();
#endif
  }
}
