// Copies k or v (any element strides) into a contiguous f16 buffer [B, Hkv, padded_rows, padded_dims] for the
// subgroup-matrix forward's direct loads (padded-key-values.ts): every head's keys padded with zero rows to a whole
// number of key tiles and its dims with zeros to the compiled head dim, so a matrix load of any attended tile stays
// inside the head's rows. With ZERO_NAN (and ZERO_OR_SCAN) NaN values are copied as 0 (k for the matrix dQ kernel, whose dS · K must
// not meet a NaN key at a zero dS). With SCAN_NAN (and ZERO_OR_SCAN) (v for the forward) NaN and infinite values are copied as 0 and
// recorded in nan_flags, 32 rows per group of 1 + 64 · DIM_WORDS words: a summary word (bit r: row r of the group has
// such a value), then per row DIM_WORDS words of the dims holding NaN or +∞ and DIM_WORDS of those holding NaN or −∞
// (flash-forward-matrix.wgsl reads them). With VARLEN the source is packed ([total, heads, dims], sequence b's keys
// from cu_seqlens[b]): its sequences are unpacked into the batch entries of the copy, each padded like a head of a
// dense source (the kernels then address every sequence's keys from row 0 of its heads).
// A workgroup copies blocks of 1024 chunks of 8 f16 (16 bytes; a block is 32 · 1024 / padded_dims whole rows, whole
// groups of the NaN record for every padded head dim 16..256), four chunks a thread, consecutive threads taking
// consecutive chunks and all four loads issued before any store. (The first version moved 8 bytes a thread, half of
// the threads idle at head dim 16; one row a thread with 16-byte loads was faster at D16 but, its loads no longer
// coalesced, slower at D64: bench notes, entry 23.) With VEC8 (rows of contiguous dims, every offset and stride a
// multiple of 8 elements) a chunk is one 16-byte load; otherwise its 8 values are read one by one as halves of 32-bit
// words. Values are moved as bits (f16 pairs in u32 words), never converted. The NaN record of a block is gathered
// in workgroup memory (atomics only where a value is special) and written out whole after a barrier.

${UNIFORMS}
@group(0) @binding(0) var<uniform> params: Params;
#if VEC8
@group(0) @binding(1) var<storage, read> source: array<vec4<u32>>;
#else
@group(0) @binding(1) var<storage, read> source: array<u32>;
#endif
@group(0) @binding(2) var<storage, read_write> padded: array<vec4<u32>>;
#if VARLEN
@group(0) @binding(4) var<storage, read> cu_seqlens: array<u32>;
#endif
#if SCAN_NAN
@group(0) @binding(3) var<storage, read_write> nan_flags: array<u32>;

// The block's record: per row 2 · words words (dims with NaN or +∞, then NaN or −∞; at most 1024 for the block's
// rows), and per group of 32 rows the rows with such a value.
var<workgroup> row_flags: array<atomic<u32>, 1024>;
var<workgroup> group_rows: array<atomic<u32>, 16>;
#endif

const THREADS: u32 = 256u;
const GROUP_ROWS: u32 = 32u;
// Dims per chunk (one vec4<u32> of f16 pairs), chunks per word of the NaN record, chunks per thread and block.
const CHUNK_DIMS: u32 = 8u;
const WORD_CHUNKS: u32 = 4u;
const THREAD_CHUNKS: u32 = 4u;
const BLOCK_CHUNKS: u32 = THREADS * THREAD_CHUNKS;

// Chunk `c` (dims 8c .. 8c + 7) of the source row whose dim 0 is element `base`, as f16 bits; 0 past params.dims.
fn load_chunk(base: u32, c: u32) -> vec4<u32> {
  let d = c * CHUNK_DIMS;
  if (d >= params.dims) {
    return vec4<u32>(0u);
  }
#if VEC8
  // params.dims is a multiple of 8 here: the chunk is inside the row.
  return source[(base + d) / CHUNK_DIMS];
#else
  var chunk = vec4<u32>(0u);
  for (var t = 0u; t < CHUNK_DIMS; t++) {
    if (d + t < params.dims) {
      let element = base + (d + t) * params.dim_stride;
      let bits = (source[element / 2u] >> ((element % 2u) * 16u)) & 0xffffu;
      chunk[t / 2u] |= bits << ((t % 2u) * 16u);
    }
  }
  return chunk;
#endif
}

// A flag per dim of a chunk: low for the low halves of its four words (dims 0, 2, 4, 6), high for the high ones.
struct HalfMasks {
  low: vec4<bool>,
  high: vec4<bool>,
}

// Folds per-half flags into an 8-bit field, bit t for dim t of the chunk (dims 2i and 2i + 1 in word i).
fn chunk_bits(masks: HalfMasks) -> u32 {
  let low = select(vec4<u32>(0u), vec4<u32>(1u, 4u, 16u, 64u), masks.low);
  let high = select(vec4<u32>(0u), vec4<u32>(2u, 8u, 32u, 128u), masks.high);
  let both = low | high;
  return both.x | both.y | both.z | both.w;
}

// Chunk `c` of `row` of the copy, read from the source (0 for rows past the sequence's keys).
fn source_chunk(row: u32, c: u32) -> vec4<u32> {
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
  if (key >= keys) {
    return vec4<u32>(0u);
  }
  return load_chunk(params.offset + b * params.batch_stride + h * params.head_stride + (first + key) * params.key_stride, c);
}

@compute @workgroup_size(THREADS)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let total_rows = params.batches * params.heads * params.padded_rows;
  let chunks = params.padded_dims / CHUNK_DIMS;
  let total_chunks = total_rows * chunks;
  let words = (params.padded_dims + 31u) / 32u;
  // Grid-stride over blocks (uniform: every thread runs every iteration).
  for (var block = wid.x * BLOCK_CHUNKS; block < total_chunks; block += groups.x * BLOCK_CHUNKS) {
    // The four chunks, all loaded before any is stored.
    var values: array<vec4<u32>, THREAD_CHUNKS>;
    for (var t = 0u; t < THREAD_CHUNKS; t++) {
      let e = block + t * THREADS + lid;
      values[t] = vec4<u32>(0u);
      if (e < total_chunks) {
        values[t] = source_chunk(e / chunks, e % chunks);
      }
    }
    for (var t = 0u; t < THREAD_CHUNKS; t++) {
      let e = block + t * THREADS + lid;
      if (e >= total_chunks) {
        break;
      }
#if ZERO_OR_SCAN
      let low = values[t] & vec4<u32>(0xffffu);
      let high = values[t] >> vec4<u32>(16u);
      // f16: exponent all ones is ±∞ (mantissa 0) or NaN.
      let low_nan = (low & vec4<u32>(0x7fffu)) > vec4<u32>(0x7c00u);
      let high_nan = (high & vec4<u32>(0x7fffu)) > vec4<u32>(0x7c00u);
#if SCAN_NAN
      let low_special = (low & vec4<u32>(0x7c00u)) == vec4<u32>(0x7c00u);
      let high_special = (high & vec4<u32>(0x7c00u)) == vec4<u32>(0x7c00u);
#else
      let low_special = low_nan;
      let high_special = high_nan;
#endif
      if (any(low_special) || any(high_special)) {
        // Rare: such values are copied as 0.
        values[t] &= select(vec4<u32>(0xffffu), vec4<u32>(0u), low_special) | select(vec4<u32>(0xffff0000u), vec4<u32>(0u), high_special);
#if SCAN_NAN
        let block_row = (e - block) / chunks;
        let c = e % chunks;
        let word = block_row * 2u * words + c / WORD_CHUNKS;
        let shift = (c % WORD_CHUNKS) * CHUNK_DIMS;
        let positive = chunk_bits(HalfMasks(low_nan | (low == vec4<u32>(0x7c00u)), high_nan | (high == vec4<u32>(0x7c00u))));
        let negative = chunk_bits(HalfMasks(low_nan | (low == vec4<u32>(0xfc00u)), high_nan | (high == vec4<u32>(0xfc00u))));
        atomicOr(&row_flags[word], positive << shift);
        atomicOr(&row_flags[word + words], negative << shift);
        atomicOr(&group_rows[block_row / GROUP_ROWS], 1u << (block_row % GROUP_ROWS));
#endif
      }
#endif
      padded[e] = values[t];
    }
#if SCAN_NAN
    // The block's record words (contiguous in nan_flags: its groups are), taken from workgroup memory and reset.
    workgroupBarrier();
    let group_words = 1u + GROUP_ROWS * 2u * words;
    let first_group = block / chunks / GROUP_ROWS;
    let block_groups = min(BLOCK_CHUNKS / chunks / GROUP_ROWS, (total_rows + GROUP_ROWS - 1u) / GROUP_ROWS - first_group);
    for (var w = lid; w < block_groups * group_words; w += THREADS) {
      let group = w / group_words;
      let in_group = w % group_words;
      var value = 0u;
      if (in_group == 0u) {
        value = atomicExchange(&group_rows[group], 0u);
      } else {
        value = atomicExchange(&row_flags[group * GROUP_ROWS * 2u * words + in_group - 1u], 0u);
      }
      nan_flags[first_group * group_words + w] = value;
    }
    workgroupBarrier();
#endif
  }
}
