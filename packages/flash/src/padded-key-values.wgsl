// Copies k or v (any element strides) into a contiguous f16 buffer [B, Hkv, padded_rows, padded_dims] for the
// subgroup-matrix forward's direct loads (padded-key-values.ts): every head's keys padded with zero rows to a whole
// number of key tiles and its dims with zeros to the compiled head dim, so a matrix load of any attended tile stays
// inside the head's rows. With ZERO_NAN NaN values are copied as 0 (k for the matrix dQ kernel, whose dS · K must
// not meet a NaN key at a zero dS). With SCAN_NAN (v for the forward) NaN and infinite values are copied as 0 and
// recorded in nan_flags, 32
// rows per group of 1 + 64 · DIM_WORDS words: a summary word (bit r: row r of the group has such a value), then per
// row DIM_WORDS words of the dims holding NaN or +∞ and DIM_WORDS of those holding NaN or −∞
// (flash-forward-matrix.wgsl reads them). A workgroup copies groups of 32 rows (grid-stride).

${UNIFORMS}
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> source: array<f16>;
@group(0) @binding(2) var<storage, read_write> padded: array<f16>;
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
    for (var e = lid; e < GROUP_ROWS * dims; e += THREADS) {
      let row = group * GROUP_ROWS + e / dims;
      let d = e % dims;
      if (row >= total_rows) {
        break;
      }
      let batch_head = row / params.padded_rows;
      let key = row % params.padded_rows;
      let b = batch_head / params.heads;
      let h = batch_head % params.heads;
      var value = f16(0.0);
      if (key < params.keys && d < params.dims) {
        value = source[params.offset + b * params.batch_stride + h * params.head_stride + key * params.key_stride + d * params.dim_stride];
#if ZERO_NAN
        if ((bitcast<u32>(f32(value)) & 0x7fffffffu) > 0x7f800000u) {
          value = f16(0.0);
        }
#endif
#if SCAN_NAN
        let bits = bitcast<u32>(f32(value));
        if ((bits & 0x7fffffffu) >= 0x7f800000u) {
          let nan = (bits & 0x7fffffffu) > 0x7f800000u;
          let words = (e / dims) * 2u * MAX_DIM_WORDS + d / 32u;
          if (nan || bits == 0x7f800000u) {
            atomicOr(&row_nan_dims[words], 1u << (d % 32u));
          }
          if (nan || bits == 0xff800000u) {
            atomicOr(&row_nan_dims[words + MAX_DIM_WORDS], 1u << (d % 32u));
          }
          atomicOr(&group_nan_rows, 1u << (e / dims));
          value = f16(0.0);
        }
#endif
      }
      padded[row * dims + d] = value;
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
