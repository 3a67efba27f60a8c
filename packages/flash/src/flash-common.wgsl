// Shared by every flash kernel: uniforms, optional inputs (mask, key lengths, varlen offsets), the sequence
// bounds of a batch entry, the allowed key range of a row (causal, window, padding) and the score of one
// (row, key) pair (scale, softcap, additive or bool mask). Semantics: attention-problem.ts in @webattn/tensor.

${UNIFORMS}

@group(0) @binding(0) var<uniform> params: Params;
#if MASK
@group(0) @binding(1) var<storage, read> mask_words: array<u32>;
#endif
#if KEY_LENGTHS
@group(0) @binding(2) var<storage, read> key_lengths: array<u32>;
#endif
#if VARLEN
@group(0) @binding(3) var<storage, read> cu_seqlens_q: array<u32>;
@group(0) @binding(4) var<storage, read> cu_seqlens_k: array<u32>;
#endif

// One batch entry: its first query/key row in memory, its lengths, and how many keys may be attended.
struct Sequence {
  q_start: u32,
  q_len: u32,
  k_start: u32,
  k_len: u32,
  k_valid: u32,
}

fn load_sequence(b: u32) -> Sequence {
  var sequence = Sequence(0u, params.query_length, 0u, params.key_length, params.key_length);
#if VARLEN
  sequence.q_start = cu_seqlens_q[b];
  sequence.q_len = cu_seqlens_q[b + 1u] - cu_seqlens_q[b];
  sequence.k_start = cu_seqlens_k[b];
  sequence.k_len = cu_seqlens_k[b + 1u] - cu_seqlens_k[b];
  sequence.k_valid = sequence.k_len;
#endif
#if KEY_LENGTHS
  sequence.k_valid = min(key_lengths[b], params.key_length);
#endif
  return sequence;
}

// Inclusive range [x, y] of keys row i may attend (x > y: none), from causal, window and key padding.
fn key_bounds(i: i32, sequence: Sequence) -> vec2<i32> {
  var lo = 0;
  var hi = i32(sequence.k_valid) - 1;
  var position = i;
  if (params.bottom_right == 1u) {
    position = i + i32(sequence.k_len) - i32(sequence.q_len);
  }
  if (params.causal == 1u) {
    hi = min(hi, position);
  }
  if (params.window_right >= 0) {
    hi = min(hi, position + params.window_right);
  }
  if (params.window_left >= 0) {
    lo = max(lo, position - params.window_left);
  }
  return vec2<i32>(lo, hi);
}

// Inclusive range [x, y] of rows that may attend some key in [first_key, last_key] (rows may still be masked
// by their own bounds; this is for skipping whole tiles).
fn row_bounds(first_key: i32, last_key: i32, sequence: Sequence) -> vec2<i32> {
  var shift = 0;
  if (params.bottom_right == 1u) {
    shift = i32(sequence.k_len) - i32(sequence.q_len);
  }
  var lo = 0;
  var hi = i32(sequence.q_len) - 1;
  // j <= position + right  <=>  position >= j - right (causal: right = 0).
  var right = -1;
  if (params.causal == 1u) {
    right = 0;
  }
  if (params.window_right >= 0) {
    right = select(params.window_right, min(right, params.window_right), right >= 0);
  }
  if (right >= 0) {
    lo = max(lo, first_key - right - shift);
  }
  if (params.window_left >= 0) {
    hi = min(hi, last_key + params.window_left - shift);
  }
  return vec2<i32>(lo, hi);
}

// Key tiles [x, y) of `block` keys that some row in [first_row, last_row] may attend (x = y: none). Key bounds are
// monotone in the row, so the first row's lower and the last row's upper bound span them.
fn attended_key_tiles(first_row: u32, last_row: u32, sequence: Sequence, block: u32) -> vec2<u32> {
  let key_lo = max(key_bounds(i32(first_row), sequence).x, 0);
  let key_hi = key_bounds(i32(last_row), sequence).y;
  if (key_hi < key_lo) {
    return vec2<u32>(0u, 0u);
  }
  return vec2<u32>(u32(key_lo) / block, u32(key_hi) / block + 1u);
}

// Query tiles [x, y) of `block` rows holding some row that may attend one of the `count` keys from first_key below
// valid_end (x = y: none). Row bounds are monotone in the key, as in attended_key_tiles.
fn attended_query_tiles(first_key: u32, count: u32, valid_end: u32, sequence: Sequence, block: u32) -> vec2<u32> {
  if (first_key >= valid_end || sequence.q_len == 0u) {
    return vec2<u32>(0u, 0u);
  }
  let rows = row_bounds(i32(first_key), i32(min(first_key + count, valid_end) - 1u), sequence);
  if (rows.y < rows.x) {
    return vec2<u32>(0u, 0u);
  }
  return vec2<u32>(u32(rows.x) / block, u32(rows.y) / block + 1u);
}

// The second block of workgroup x when params.paired_blocks is 1 (balanced-blocks.ts): the dispatch covers `span`
// rows (or keys) in blocks of `block` with half as many workgroups, and workgroup x also takes block
// blocks − 1 − x, so that under a causal mask every workgroup attends about as many tiles. x itself when there is
// no second block (not paired, or the middle block of an odd count).
fn mirrored_block(x: u32, span: u32, block: u32) -> u32 {
  if (params.paired_blocks == 0u) {
    return x;
  }
  return (span + block - 1u) / block - 1u - x;
}

// The stored score gradients (stored-scores.ts): per (batch, query head) of the piece, from its first batch entry
// and query head, a slot of ds_keys keys × ds_rows rows, key-major. (Blocks of the dK/dV kernel's keys × rows, each
// written by one of its steps in one piece, ran no faster: bench notes, entry 34.) The first vec4 of (b, h)'s slot:
fn stored_score_slot(b: u32, h: u32) -> u32 {
  return ((b - params.ds_batch_base) * params.ds_slot_heads + h - params.ds_head_base) * params.ds_keys * (params.ds_rows >> 2u);
}

// The matrix backward's stored score gradients (matrix-stored-scores.ts): f16, per (batch, query head) of the piece a
// slot of ds_rows rows × ds_keys keys, row-major. The first element of (b, h)'s slot:
fn stored_half_slot(b: u32, h: u32) -> u32 {
  return ((b - params.ds_batch_base) * params.ds_slot_heads + h - params.ds_head_base) * params.ds_keys * params.ds_rows;
}

// The vec4 of rows i .. i + 3 (i a multiple of 4) of key j in the slot starting at vec4 `slot`.
fn stored_score_quad(slot: u32, j: u32, i: u32) -> u32 {
  return slot + j * (params.ds_rows >> 2u) + (i >> 2u);
}

// Banded masks. Under a causal mask or a window bounded on the right, row i attends keys up to i (+ right), so the
// later a row block lies the more key tiles it attends (with a window bounded on the left only, the earlier).
fn later_rows_heavier() -> bool {
  return params.causal == 1u || params.window_right >= 0;
}

fn banded() -> bool {
  return params.causal == 1u || params.window_left >= 0 || params.window_right >= 0;
}

// Bytes of keys and values (f16) that the workgroups of one chunk of (batch, head) planes share.
const PLANE_CHUNK_BYTES: f32 = 8388608.0;

// The grid's (block, head, batch) for a dispatched workgroup: the planes (head, batch) in chunks whose keys and
// values take about PLANE_CHUNK_BYTES, x (the row or key block) varying slowest within a chunk, so that the
// workgroups running at once spread over the chunk's planes instead of crowding one plane's blocks; `reverse`: x
// from the last block down. A bijection of the grid. With the plain order (x fastest) the matrix forward took 13–14%
// longer at B4 H16 N4096 D64 and B1 H8 N16384 D64 on an H200 (bench notes, entry 19; why is not established); the
// f32 tiled forward gained nothing from it. Under a banded mask the kernels take their heaviest blocks first (x
// slowest, reversed where later blocks are heavier): when the grid is more than one wave, the light blocks then fill
// the end instead of the heaviest ones running last (bench notes, entry 21: the seed-shape causal forward 0.91 of
// the time in f16, 0.83 in f32).
fn plane_chunked_workgroup(id: vec3<u32>, groups: vec3<u32>, reverse: bool) -> vec3<u32> {
  let planes = groups.y * groups.z;
  let plane_bytes = f32(params.key_length) * f32(params.head_dim_qk + params.head_dim_v) * 2.0;
  let chunk = u32(clamp(PLANE_CHUNK_BYTES / max(plane_bytes, 1.0), 1.0, f32(planes)));
  let linear = id.x + groups.x * (id.y + groups.y * id.z);
  let first_plane = (linear / (groups.x * chunk)) * chunk;
  let in_chunk = linear % (groups.x * chunk);
  // The last chunk may hold fewer planes.
  let width = min(chunk, planes - first_plane);
  let plane = first_plane + in_chunk % width;
  let x = in_chunk / width;
  return vec3<u32>(select(x, groups.x - 1u - x, reverse), plane % groups.y, plane / groups.y);
}

// Always 0, unknown to compilers (see matrix-blocks.ts): the subgroup-matrix kernels add site · salt to their
// workgroup-memory offsets so that no driver merges or hoists matrix loads.
fn salt(site: u32) -> u32 {
  return site * params.opaque_zero;
}

#if MASK
fn mask_index(b: u32, h: u32, i: u32, j: u32) -> u32 {
  return params.mask_offset + b * params.mask_batch + h * params.mask_head + i * params.mask_row + j * params.mask_column;
}
#endif

// The capped score and d(score)/d(scale * q·k): softcap c gives c * tanh(x / c), derivative 1 - tanh².
fn capped_score(dot_product: f32) -> vec2<f32> {
  let x = dot_product * params.scale;
  if (params.softcap > 0.0) {
    let t = tanh(x / params.softcap);
    return vec2<f32>(params.softcap * t, 1.0 - t * t);
  }
  return vec2<f32>(x, 1.0);
}

// Adds the additive mask or removes the pair for a false bool mask (returns -inf).
fn masked_score(score: f32, b: u32, h: u32, i: u32, j: u32) -> f32 {
#if MASK_BOOL
  let index = mask_index(b, h, i, j);
  let byte = (mask_words[index >> 2u] >> (8u * (index & 3u))) & 0xffu;
  return select(score, params.negative_infinity, byte == 0u);
#elif MASK_F32
  return score + bitcast<f32>(mask_words[mask_index(b, h, i, j)]);
#elif MASK_F16
  let index = mask_index(b, h, i, j);
  let pair = unpack2x16float(mask_words[index >> 1u]);
  return score + select(pair.x, pair.y, (index & 1u) == 1u);
#else
  return score;
#endif
}

// masked_score for keys j .. j + 3 of row i, all below params.key_length. A bool mask with unit column stride reads
// the four bytes in one or two words (what a [B, 1, 1, S] padding mask costs per key matters at small head dims).
fn masked_scores4(score: vec4<f32>, b: u32, h: u32, i: u32, j: u32) -> vec4<f32> {
#if MASK_BOOL
  if (params.mask_column == 1u) {
    let index = mask_index(b, h, i, j);
    let shift = 8u * (index & 3u);
    var bytes = mask_words[index >> 2u] >> shift;
    if (shift != 0u) {
      // Bytes index + 3 and before lie in the next word when index is not a multiple of 4.
      bytes |= mask_words[(index >> 2u) + 1u] << (32u - shift);
    }
    let allowed = (vec4<u32>(bytes) >> vec4<u32>(0u, 8u, 16u, 24u)) & vec4<u32>(0xffu);
    return select(score, vec4<f32>(params.negative_infinity), allowed == vec4<u32>(0u));
  }
#endif
  return vec4<f32>(masked_score(score.x, b, h, i, j), masked_score(score.y, b, h, i, j + 1u), masked_score(score.z, b, h, i, j + 2u), masked_score(score.w, b, h, i, j + 3u));
}

// Key-tile skipping for bool masks that broadcast over the query rows (params.mask_row = 0: a [B, 1, 1, S] key
// padding mask, say): a workgroup marks which of its key tiles hold a key the mask allows for (b, h)
// (mark_live_key_tiles) and, where some are not, skips those (key_tile_live: one barrier per tile, so only then):
// the forward and dQ kernels skip key tiles, the tiled and compact dK/dV kernels a key block the mask removes for
// every head (not the matrix dK/dV: the check there cost 7% at N16384 even with nothing removed). Only the first
// 32 · SKIP_WORDS tiles are marked; later ones always run. The matrix forward also marks the tiles where the mask
// removes some key (mark_partial_key_tiles) and reads no mask in the others (key_tile_whole); in the other kernels
// that did not pay (bench notes, entry 20).
#if MASK_BOOL
const SKIP_WORDS: u32 = 16u;
// Bit t % 32 of word t / 32: tile t has no allowed key (dead tiles are marked, so that a mask allowing every key
// costs one check per tile and no atomics).
var<workgroup> dead_tile_marks: array<atomic<u32>, SKIP_WORDS>;
var<workgroup> dead_tile_words: array<u32, SKIP_WORDS>;
var<workgroup> dead_tiles_shared: u32;

// Whether the mask allows some of keys j .. j + 3 (those below params.key_length) for (b, h).
fn key_quad_allowed(b: u32, h: u32, j: u32) -> bool {
  var scores = vec4<f32>(params.negative_infinity);
  if (j + 3u < params.key_length) {
    scores = masked_scores4(vec4<f32>(0.0), b, h, 0u, j);
  } else {
    for (var t = 0u; j + t < params.key_length; t++) {
      scores[t] = masked_score(0.0, b, h, 0u, j + t);
    }
  }
  return any(scores != vec4<f32>(params.negative_infinity));
}

// Marks tiles t < `tiles` of keys first_key + t · block .. + block − 1 (rounded up to whole quads); from uniform
// control flow, by all `threads` threads. Whether some marked tile has no allowed key (uniform).
fn mark_live_key_tiles(b: u32, h: u32, first_key: u32, tiles: u32, block: u32, lid: u32, threads: u32) -> bool {
  if (params.mask_row != 0u) {
    return false;
  }
  for (var w = lid; w < SKIP_WORDS; w += threads) {
    atomicStore(&dead_tile_marks[w], 0u);
  }
  workgroupBarrier();
  let marked = min(tiles, 32u * SKIP_WORDS);
  for (var t = lid; t < marked; t += threads) {
    let tile_end = min(first_key + (t + 1u) * block, params.key_length);
    var live = false;
    for (var j = first_key + t * block; j < tile_end && !live; j += 4u) {
      live = key_quad_allowed(b, h, j);
    }
    if (!live) {
      atomicOr(&dead_tile_marks[t / 32u], 1u << (t % 32u));
    }
  }
  workgroupBarrier();
  for (var w = lid; w < SKIP_WORDS; w += threads) {
    dead_tile_words[w] = atomicLoad(&dead_tile_marks[w]);
  }
  if (lid == 0u) {
    var dead = 0u;
    for (var w = 0u; w < SKIP_WORDS; w++) {
      dead |= atomicLoad(&dead_tile_marks[w]);
    }
    dead_tiles_shared = dead;
  }
  return workgroupUniformLoad(&dead_tiles_shared) != 0u;
}

// Whether tile t of the last mark_live_key_tiles may hold an allowed key (uniform; call only where it found a dead one).
fn key_tile_live(t: u32) -> bool {
  if (t >= 32u * SKIP_WORDS) {
    return true;
  }
  return ((workgroupUniformLoad(&dead_tile_words[t / 32u]) >> (t % 32u)) & 1u) == 0u;
}

// Bit t % 32 of word t / 32: tile t has a key below params.key_length that the mask removes.
var<workgroup> partial_tile_marks: array<atomic<u32>, SKIP_WORDS>;

// Whether the mask removes some of keys j .. j + 3 below params.key_length for (b, h).
fn key_quad_removed(b: u32, h: u32, j: u32) -> bool {
  if (j + 3u < params.key_length) {
    return any(masked_scores4(vec4<f32>(0.0), b, h, 0u, j) == vec4<f32>(params.negative_infinity));
  }
  var removed = false;
  for (var t = 0u; j + t < params.key_length; t++) {
    removed = removed || masked_score(0.0, b, h, 0u, j + t) == params.negative_infinity;
  }
  return removed;
}

// Marks the tiles, as mark_live_key_tiles, that hold a key the mask removes (reading every key of the others), for
// key_tile_whole. From uniform control flow, by all `threads` threads.
fn mark_partial_key_tiles(b: u32, h: u32, first_key: u32, tiles: u32, block: u32, lid: u32, threads: u32) {
  if (params.mask_row != 0u) {
    return;
  }
  for (var w = lid; w < SKIP_WORDS; w += threads) {
    atomicStore(&partial_tile_marks[w], 0u);
  }
  workgroupBarrier();
  let marked = min(tiles, 32u * SKIP_WORDS);
  for (var t = lid; t < marked; t += threads) {
    let tile_end = min(first_key + (t + 1u) * block, params.key_length);
    var removes = false;
    for (var j = first_key + t * block; j < tile_end && !removes; j += 4u) {
      removes = key_quad_removed(b, h, j);
    }
    if (removes) {
      atomicOr(&partial_tile_marks[t / 32u], 1u << (t % 32u));
    }
  }
  workgroupBarrier();
}

// Whether the mask allows every key below params.key_length of tile t of the last mark_partial_key_tiles, so that its
// scores need no mask reads (false where the mask does not broadcast over rows: nothing was marked). Uniform in
// value, but no barrier may depend on it.
fn key_tile_whole(t: u32) -> bool {
  if (params.mask_row != 0u || t >= 32u * SKIP_WORDS) {
    return false;
  }
  return ((atomicLoad(&partial_tile_marks[t / 32u]) >> (t % 32u)) & 1u) == 0u;
}
#else
fn mark_live_key_tiles(b: u32, h: u32, first_key: u32, tiles: u32, block: u32, lid: u32, threads: u32) -> bool {
  return false;
}

fn key_tile_live(t: u32) -> bool {
  return true;
}
#endif

// The first key tile from `start` below `end` that may hold an allowed key (end: none), tiles counted from `begin`
// as in mark_live_key_tiles, whose result is `skips`. Uniform.
fn next_live_tile(start: u32, begin: u32, end: u32, skips: bool) -> u32 {
  var tile = start;
  while (skips && tile < end && !key_tile_live(tile - begin)) {
    tile++;
  }
  return tile;
}

// NaN by its bits: WGSL leaves NaN comparisons, max() and select on NaN to the implementation.
fn is_nan(x: f32) -> bool {
  return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u;
}

fn is_nan4(x: vec4<f32>) -> vec4<bool> {
  return (bitcast<vec4<u32>>(x) & vec4<u32>(0x7fffffffu)) > vec4<u32>(0x7f800000u);
}

// x with its NaN elements replaced by 0 (for tiles whose NaNs are accounted for by a row or key flag).
fn without_nan4(x: vec4<f32>) -> vec4<f32> {
  return select(x, vec4<f32>(0.0), is_nan4(x));
}

// Quiet NaNs built at run time (a NaN constant expression is a shader-creation error in WGSL).
fn nan_f32() -> f32 {
  return bitcast<f32>(0x7fc00000u | params.opaque_zero);
}

#if F16
// Eight f16 as the 16 bytes of a vec4<u32>, and back: the chunks that kernels with *_VEC8 bindings load and store
// (rows of contiguous dims starting at multiples of 8 elements: padded-key-values.ts's rowsOfEights).
fn pack_chunk(values: array<f16, 8>) -> vec4<u32> {
  var chunk: vec4<u32>;
  for (var t = 0u; t < 4u; t++) {
    chunk[t] = bitcast<u32>(vec2<f16>(values[2u * t], values[2u * t + 1u]));
  }
  return chunk;
}

fn unpack_chunk(chunk: vec4<u32>) -> array<f16, 8> {
  var values: array<f16, 8>;
  for (var t = 0u; t < 4u; t++) {
    let pair = bitcast<vec2<f16>>(chunk[t]);
    values[2u * t] = pair.x;
    values[2u * t + 1u] = pair.y;
  }
  return values;
}
#endif

fn nan_stored() -> ${T} {
#if F16
  return bitcast<vec2<f16>>(0x7e007e00u | params.opaque_zero).x;
#else
  return nan_f32();
#endif
}

// Kept-element multiplier for dropout: 1 / (1 - p) when kept, 0 when dropped.
fn dropout_factor(word: u32) -> f32 {
  return select(0.0, params.dropout_scale, word >= params.dropout_threshold);
}

// Bit c (c < 8) set where column 8 · octet + c of a row is kept, from that row's and octet's attention_dropout_draw.
fn dropout_keep_octet(draw: vec4<u32>) -> u32 {
  var bits = 0u;
  for (var c = 0u; c < 8u; c++) {
    bits |= select(0u, 1u << c, dropout_factor(attention_dropout_values(draw, c >> 2u)[c & 3u]) > 0.0);
  }
  return bits;
}

fn dropout_stream() -> vec4<u32> {
  return vec4<u32>(params.dropout_stream0, params.dropout_stream1, params.dropout_stream2, params.dropout_stream3);
}
