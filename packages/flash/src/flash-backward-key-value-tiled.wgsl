// FlashAttention-2 backward for dK and dV, tiled like flash-forward-tiled.wgsl with the roles of rows and keys
// swapped: one workgroup per tile of BK = (THREADS / KEY_THREADS) · ROWS keys of one (batch, kv head), threads in
// a grid of key groups (ty) × KEY_THREADS (tx), keys and values staged once. It loops over the query heads that
// share the kv head (GQA) and over the query tiles of BLOCK_M = 4 · KEY_THREADS rows that may attend its keys
// (others are skipped), staging qᵀ, dOᵀ (transposed, 4 rows per vec4), logsumexp and delta (the next tile's q, dO
// and row statistics are read into registers while this one is computed). Thread (ty, tx)
// computes Sᵀ = k qᵀ and dPᵀ = v dOᵀ for its ROWS keys × rows 4·tx .. 4·tx + 3 (the forward's summation order,
// so P = exp(S − logsumexp) is exact), P̃ᵀ and dSᵀ · scale into workgroup memory (a thread whose keys lie inside
// the bounds of all four rows skips the bound tests: quad_gradients compiled twice through inlining, bench notes
// entry 41), then dV += P̃ᵀ dO and
// dK += dSᵀ q for its keys × head dims tx, tx + KEY_THREADS, ... With dropout, the workgroup draws each (row, 8 keys)
// once per query tile into keep bits (a thread's keys share their draws with 8 / ROWS threads; bench notes entry 19),
// which each thread reads once per key for its four rows.
// Each gradient element is summed by one thread in a fixed order: deterministic. A key that a row with a NaN
// logsumexp may attend gets NaN dK and dV; NaN query rows are kept out of the q tile (they are such rows), so that
// the zero dS of a masked pair cannot spread them. Compiled with PAIRED_BLOCKS (causal or one-sided windows at small
// head dims: balanced-blocks.ts), a workgroup takes a key block and its mirror.
//
// A dispatch covers the keys [key_base, key_end) (all of them unless split: binding-chunks.ts; split points are
// multiples of the workgroup's keys) and the query rows [row_base, row_end). When the query rows of one kv head do
// not fit a storage binding, the recording splits them: each dispatch covers the query heads
// [group_first, group_first + group_count) of the group and a range of rows, in the unsplit order (heads, then
// rows). A range may end inside a query tile: the tile's rows outside [row_base, row_end) are staged like rows
// past the sequence (q and dO zero, logsumexp −∞) and take no part, so each row is summed by exactly one
// dispatch. Compiled with STORE_SCORES (stored-scores.ts), it also writes each pair's dS · scale to stored_scores,
// from which flash-backward-query-stored.wgsl computes dQ without recomputing S and dP. Split over query
// rows, this source is compiled with ${GRADIENT_T} = f32: dk and dv are f32 scratch holding the running sums, loaded at the start when
// params.kv_partial is 1 (so the sums continue exactly), and flash-backward-finish.wgsl writes them out.

override THREADS: u32 = 128u;
// Keys per thread.
const ROWS: u32 = ${ROWS}u;
const KEY_THREADS: u32 = ${KEY_THREADS}u;
const BLOCK_M: u32 = 4u * KEY_THREADS;
const HEAD_DIM_QK: u32 = ${HEAD_DIM_QK}u;
const HEAD_DIM_V: u32 = ${HEAD_DIM_V}u;
const QK4: u32 = HEAD_DIM_QK / 4u;
const V4: u32 = HEAD_DIM_V / 4u;
// dK and dV head dims per thread: tx + KEY_THREADS · m.
const DK_DIMS: u32 = HEAD_DIM_QK / KEY_THREADS;
const DV_DIMS: u32 = HEAD_DIM_V / KEY_THREADS;
// Padded row strides (in vec4), so that the rows a subgroup reads fall in different banks.
const K_STRIDE: u32 = QK4 + 1u;
const V_STRIDE: u32 = V4 + 1u;
const ROW_STRIDE: u32 = KEY_THREADS + 1u;
// Query and output-gradient vec4s each thread reads per query tile.
const Q_LOADS: u32 = ${Q_LOADS}u;
const G_LOADS: u32 = ${G_LOADS}u;

// Row buffers as array<f32 or f16>, or as array<vec4<f32>> where their rows allow (vec4-loaders.ts).
@group(0) @binding(5) var<storage, read> q: array<${Q_ELEMENT}>;
@group(0) @binding(6) var<storage, read> k: array<${K_ELEMENT}>;
@group(0) @binding(7) var<storage, read> v: array<${V_ELEMENT}>;
@group(0) @binding(8) var<storage, read> grad_out: array<${GRAD_OUT_ELEMENT}>;
@group(0) @binding(9) var<storage, read> logsumexp: array<f32>;
@group(0) @binding(10) var<storage, read> delta: array<f32>;
@group(0) @binding(11) var<storage, read_write> dk: array<${GRADIENT_T}>;
@group(0) @binding(12) var<storage, read_write> dv: array<${GRADIENT_T}>;
#if STORE_SCORES
// Rows per workgroup of the stored-score dQ kernel (its BLOCK_ROWS).
const STORED_ROWS: u32 = ${STORED_ROWS}u;
// dS · scale of every pair visited, for dQ = dS K (flash-backward-query-stored.wgsl; layout: stored_score_slot).
@group(0) @binding(13) var<storage, read_write> stored_scores: array<vec4<f32>>;
#endif

var<workgroup> k_tile: array<vec4<f32>, THREADS / KEY_THREADS * ROWS * K_STRIDE>;
var<workgroup> v_tile: array<vec4<f32>, THREADS / KEY_THREADS * ROWS * V_STRIDE>;
// qt_tile[d · ROW_STRIDE + r4] = query rows 4·r4 .. 4·r4 + 3 of the tile at dim d (gt_tile likewise for dO).
var<workgroup> qt_tile: array<vec4<f32>, HEAD_DIM_QK * ROW_STRIDE>;
var<workgroup> gt_tile: array<vec4<f32>, HEAD_DIM_V * ROW_STRIDE>;
// pt_tile[c · ROW_STRIDE + r4] = P̃ of key c for rows 4·r4 .. 4·r4 + 3; dst_tile likewise dS · scale.
var<workgroup> pt_tile: array<vec4<f32>, THREADS / KEY_THREADS * ROWS * ROW_STRIDE>;
var<workgroup> dst_tile: array<vec4<f32>, THREADS / KEY_THREADS * ROWS * ROW_STRIDE>;
// The tile's row statistics by quads, as thread tx reads them (rows 4·tx .. 4·tx + 3 in one vector): logsumexp,
// residual, delta, and the keys [lo, hi] each row may attend within the dispatch (key_bounds; lo > hi: none).
var<workgroup> lse_tile: array<vec4<f32>, KEY_THREADS>;
var<workgroup> residual_tile: array<vec4<f32>, KEY_THREADS>;
var<workgroup> delta_tile: array<vec4<f32>, KEY_THREADS>;
var<workgroup> lo_tile: array<vec4<i32>, KEY_THREADS>;
var<workgroup> hi_tile: array<vec4<i32>, KEY_THREADS>;
// key_poisoned[c] = 1: key c gets NaN gradients (set by any of its threads).
var<workgroup> key_poisoned: array<atomic<u32>, THREADS / KEY_THREADS * ROWS>;
var<workgroup> sequence_shared: Sequence;

// load_q4, load_k4, ... (vec4-loaders.ts): elements d..d+3 of a row, zero at and past `dim`.
${VEC4_LOADERS}
#if PAIRED_BLOCKS
@compute @workgroup_size(THREADS)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
  // Causal balance (flash-common.wgsl's mirrored_block): then the key block whose row range complements this one's.
  // One call site, so that the block's code is not there twice.
  let mirrored = mirrored_block(wid.x, params.key_end - params.key_base, THREADS / KEY_THREADS * ROWS);
  let blocks = select(1u, 2u, mirrored != wid.x);
  for (var turn = 0u; turn < blocks; turn++) {
    if (turn == 1u) {
      // Every thread is done with the first block (its tiles and key marks) before the second one starts afresh.
      workgroupBarrier();
      for (var c = lid; c < THREADS / KEY_THREADS * ROWS; c += THREADS) {
        atomicStore(&key_poisoned[c], 0u);
      }
      workgroupBarrier();
    }
    gradient_key_block(lid, vec3<u32>(select(wid.x, mirrored, turn == 1u), wid.y, wid.z));
  }
}

// dK and dV of one key block, wid.x being the block. Unpaired, this code is main itself, as before pairing
// (as a function called from main it ran the D64 backward 4–5% slower: bench notes, entry 29).
fn gradient_key_block(lid: u32, wid: vec3<u32>) {
#else
@compute @workgroup_size(THREADS)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
#endif
  let block_keys = THREADS / KEY_THREADS * ROWS;
  let tx = lid % KEY_THREADS;
  let ty = lid / KEY_THREADS;
  // Global indices: a chunked dispatch (binding-chunks.ts) covers batch entries and kv heads from its bases.
  let b = params.batch_base + wid.z;
  let kv_head = params.head_base + wid.y;
  let key0 = params.key_base + wid.x * block_keys;
  let first_key = key0 + ty * ROWS;
  if (lid == 0u) {
    sequence_shared = load_sequence(b);
  }
  let sequence = workgroupUniformLoad(&sequence_shared);
  // This dispatch's keys, and those of them that may be attended.
  let key_end = min(sequence.k_len, params.key_end);
  let valid_end = min(sequence.k_valid, params.key_end);
  if (key0 >= key_end) {
    return;
  }
  let dqk = params.head_dim_qk;
  let dvd = params.head_dim_v;
  let negative_infinity = params.negative_infinity;
  let group = params.q_heads / params.kv_heads;

  // The key octets (8 aligned keys: one dropout draw per row) that this workgroup's keys touch: at most
  // BLOCK_M · octets ≤ 4 · KEY_THREADS · (block_keys / 8 + 1) keep words, well within dst_tile's
  // 4 · block_keys · ROW_STRIDE floats.
  let octet_first = key0 >> 3u;
#if DROPOUT
  let octets = ((key0 + block_keys - 1u) >> 3u) - octet_first + 1u;
#endif
  // Rows that may attend some key of this workgroup.
  let attended = attended_query_tiles(key0, block_keys, valid_end, sequence, BLOCK_M);
  var tile_begin = attended.x;
  var tile_end = attended.y;
  // This dispatch's query rows [row_base, row_limit) (all of them unless split; a split point may fall inside a
  // tile, whose other rows are then staged as absent) and the tiles holding them.
  let row_limit = min(sequence.q_len, params.row_end);
  tile_begin = max(tile_begin, params.row_base / BLOCK_M);
  tile_end = min(tile_end, (params.row_end + BLOCK_M - 1u) / BLOCK_M);
#if STORE_SCORES
  // The stored-score dQ reads, for each of its blocks of STORED_ROWS rows, every pair of each key tile that some row
  // of the block may attend, and the scratch is not zeroed unless a bool mask may skip blocks (stored-scores.ts):
  // visit whole such row blocks (every pair of them gets its dS, 0 where masked), so that all those pairs are written.
  if (tile_end > tile_begin) {
    let tiles_per_block = max(STORED_ROWS / BLOCK_M, 1u);
    tile_begin = tile_begin / tiles_per_block * tiles_per_block;
    tile_end = min((tile_end + tiles_per_block - 1u) / tiles_per_block * tiles_per_block, (row_limit + BLOCK_M - 1u) / BLOCK_M);
  }
#endif

  // The workgroup's keys and values (zero past the valid keys).
  let k_base = params.k_offset + b * params.k_batch + kv_head * params.k_head;
  let v_base = params.v_offset + b * params.v_batch + kv_head * params.v_head;
  for (var e = lid; e < block_keys * QK4; e += THREADS) {
    let j = key0 + e / QK4;
    var value = vec4<f32>(0.0);
    if (j < valid_end) {
      value = load_k4(k_base + (sequence.k_start + j) * params.k_seq, (e % QK4) * 4u, dqk, params.k_dim);
    }
    k_tile[(e / QK4) * K_STRIDE + e % QK4] = value;
  }
  for (var e = lid; e < block_keys * V4; e += THREADS) {
    let j = key0 + e / V4;
    var value = vec4<f32>(0.0);
    if (j < valid_end) {
      value = load_v4(v_base + (sequence.k_start + j) * params.v_seq, (e % V4) * 4u, dvd, params.v_dim);
    }
    v_tile[(e / V4) * V_STRIDE + e % V4] = value;
  }

  // This thread's keys × dims tx + KEY_THREADS · m: the running sums (continued from scratch when partial).
  var dk_acc: array<f32, ROWS * DK_DIMS>;
  var dv_acc: array<f32, ROWS * DV_DIMS>;
  for (var t = 0u; t < ROWS; t++) {
    let j = first_key + t;
    for (var m = 0u; m < DK_DIMS; m++) {
      dk_acc[t * DK_DIMS + m] = 0.0;
    }
    for (var m = 0u; m < DV_DIMS; m++) {
      dv_acc[t * DV_DIMS + m] = 0.0;
    }
    if (params.kv_partial == 1u && j < key_end) {
      // Continue the sums of the previous dispatches (f32 scratch, see the header); NaN marks a poisoned key.
      let dk_address = params.dk_offset + b * params.dk_batch + kv_head * params.dk_head + (sequence.k_start + j) * params.dk_seq;
      let dv_address = params.dv_offset + b * params.dv_batch + kv_head * params.dv_head + (sequence.k_start + j) * params.dv_seq;
      var nan_found = false;
      for (var m = 0u; m < DK_DIMS; m++) {
        let d = tx + m * KEY_THREADS;
        if (d < dqk) {
          let value = f32(dk[dk_address + d * params.dk_dim]);
          nan_found = nan_found || is_nan(value);
          dk_acc[t * DK_DIMS + m] = value;
        }
      }
      for (var m = 0u; m < DV_DIMS; m++) {
        let d = tx + m * KEY_THREADS;
        if (d < dvd) {
          let value = f32(dv[dv_address + d * params.dv_dim]);
          nan_found = nan_found || is_nan(value);
          dv_acc[t * DV_DIMS + m] = value;
        }
      }
      if (nan_found) {
        atomicStore(&key_poisoned[ty * ROWS + t], 1u);
      }
    }
  }

  // Nothing to add where a bool mask that broadcasts over rows and heads removes every key of the block.
  if (params.mask_head == 0u && mark_live_key_tiles(b, 0u, key0, 1u, block_keys, lid, THREADS)) {
    tile_end = tile_begin;
  }
  // (query head, query tile) steps: the group's heads in order, each over the tiles; the next step's q and dO rows
  // are read into registers while this one is computed.
  let tiles = select(0u, tile_end - tile_begin, tile_end > tile_begin);
  let steps = params.group_count * tiles;
  var q_next: array<vec4<f32>, Q_LOADS>;
  var g_next: array<vec4<f32>, G_LOADS>;
  // Row lid's logsumexp, residual and delta (x, y, z) and its key bounds for the next step (threads from BLOCK_M on
  // hold none).
  var stats_next: vec3<f32>;
  var bounds_next: vec2<i32>;
  if (steps > 0u) {
    fetch_rows(kv_head * group + params.group_first, tile_begin, lid, b, sequence, row_limit, &q_next, &g_next, &stats_next, &bounds_next);
  }
  for (var step = 0u; step < steps; step++) {
    let h = kv_head * group + params.group_first + step / tiles;
    let tile = tile_begin + step % tiles;
    let batch_head = b * params.q_heads + h;
    let row0 = tile * BLOCK_M;
    workgroupBarrier();
    // qᵀ and dOᵀ from the registers: consecutive threads hold consecutive rows of one dim quad (conflict-free stores).
    for (var n = 0u; n < Q_LOADS; n++) {
      let e = lid + n * THREADS;
      if (e < BLOCK_M * QK4) {
        let r = e % BLOCK_M;
        let d4 = e / BLOCK_M;
        for (var t = 0u; t < 4u; t++) {
          qt_tile[(d4 * 4u + t) * ROW_STRIDE + r / 4u][r % 4u] = q_next[n][t];
        }
      }
    }
    for (var n = 0u; n < G_LOADS; n++) {
      let e = lid + n * THREADS;
      if (e < BLOCK_M * V4) {
        let r = e % BLOCK_M;
        let d4 = e / BLOCK_M;
        for (var t = 0u; t < 4u; t++) {
          gt_tile[(d4 * 4u + t) * ROW_STRIDE + r / 4u][r % 4u] = g_next[n][t];
        }
      }
    }
    if (lid < BLOCK_M) {
      lse_tile[lid / 4u][lid % 4u] = stats_next.x;
      residual_tile[lid / 4u][lid % 4u] = stats_next.y;
      delta_tile[lid / 4u][lid % 4u] = stats_next.z;
      lo_tile[lid / 4u][lid % 4u] = bounds_next.x;
      hi_tile[lid / 4u][lid % 4u] = bounds_next.y;
    }
#if DROPOUT
    // The dropout keep bits of the tile's rows × the workgroup's key octets, one dropout draw each (drawn by each
    // thread, a draw would be repeated by every thread whose keys share its octet), held in dst_tile's memory
    // until the weights are in registers: bit c of keep_bits(r, o) is key 8 · (octet_first + o) + c of row r, as
    // an integer-valued f32 (exact), at dst_tile[o · KEY_THREADS + r / 4][r % 4], so that a thread reads its 4
    // rows of an octet at once. Rows outside the dispatch's rows are not drawn (they take no part).
    for (var e = lid; e < BLOCK_M * octets; e += THREADS) {
      let r = e % BLOCK_M;
      let i = row0 + r;
      var bits = 0u;
      if (i >= params.row_base && i < row_limit) {
        bits = dropout_keep_octet(attention_dropout_draw(dropout_stream(), batch_head, i, octet_first + e / BLOCK_M));
      }
      dst_tile[e / 4u][e % 4u] = f32(bits);
    }
#endif
    workgroupBarrier();
    if (step + 1u < steps) {
      let following = step + 1u;
      fetch_rows(kv_head * group + params.group_first + following / tiles, tile_begin + following % tiles, lid, b, sequence, row_limit, &q_next, &g_next, &stats_next, &bounds_next);
    }

    // Sᵀ = k qᵀ and dPᵀ = v dOᵀ for this thread's keys × rows row0 + 4·tx .. + 3 (the forward's order).
    var s: array<vec4<f32>, ROWS>;
    var dp: array<vec4<f32>, ROWS>;
    for (var t = 0u; t < ROWS; t++) {
      s[t] = vec4<f32>(0.0);
      dp[t] = vec4<f32>(0.0);
    }
    for (var d4 = 0u; d4 < QK4; d4++) {
      var k4: array<vec4<f32>, ROWS>;
      for (var t = 0u; t < ROWS; t++) {
        k4[t] = k_tile[(ty * ROWS + t) * K_STRIDE + d4];
      }
      for (var dd = 0u; dd < 4u; dd++) {
        let queries = qt_tile[(d4 * 4u + dd) * ROW_STRIDE + tx];
        for (var t = 0u; t < ROWS; t++) {
          s[t] += queries * k4[t][dd];
        }
      }
    }
    for (var d4 = 0u; d4 < V4; d4++) {
      var v4: array<vec4<f32>, ROWS>;
      for (var t = 0u; t < ROWS; t++) {
        v4[t] = v_tile[(ty * ROWS + t) * V_STRIDE + d4];
      }
      for (var dd = 0u; dd < 4u; dd++) {
        let gradients = gt_tile[(d4 * 4u + dd) * ROW_STRIDE + tx];
        for (var t = 0u; t < ROWS; t++) {
          dp[t] += gradients * v4[t][dd];
        }
      }
    }
    // P̃ᵀ and dSᵀ · scale (0 where masked) into workgroup memory.
    var weights: array<vec4<f32>, ROWS>;
    var ds: array<vec4<f32>, ROWS>;
    for (var t = 0u; t < ROWS; t++) {
      weights[t] = vec4<f32>(0.0);
      ds[t] = vec4<f32>(0.0);
    }
    let rows = RowQuad(lse_tile[tx], residual_tile[tx], delta_tile[tx], lo_tile[tx], hi_tile[tx], row0 + 4u * tx, first_key, b, h, tx, ty, octet_first);
    // Threads whose keys all lie inside the bounds of their four rows, each row with a finite logsumexp, take the form
    // without those tests.
    var inside = true;
    for (var u = 0u; u < 4u; u++) {
      inside = inside && !is_nan(rows.lse[u]) && rows.lse[u] != negative_infinity && rows.lo[u] <= i32(first_key) && rows.hi[u] >= i32(first_key + ROWS - 1u);
    }
    if (inside) {
      quad_gradients(rows, false, &s, &dp, &weights, &ds);
    } else {
      quad_gradients(rows, true, &s, &dp, &weights, &ds);
    }
#if DROPOUT
    // Every thread has read its keep bits before dst_tile takes dS.
    workgroupBarrier();
#endif
    for (var t = 0u; t < ROWS; t++) {
      pt_tile[(ty * ROWS + t) * ROW_STRIDE + tx] = weights[t];
      dst_tile[(ty * ROWS + t) * ROW_STRIDE + tx] = ds[t];
    }
#if STORE_SCORES
    // This thread's keys × rows 4·tx .. 4·tx + 3 (whole vec4s: the slot's rows are padded to whole query tiles).
    let slot = stored_score_slot(b, h);
    for (var t = 0u; t < ROWS; t++) {
      stored_scores[stored_score_quad(slot, first_key + t, row0 + 4u * tx)] = ds[t];
    }
#endif
    workgroupBarrier();

    // dV += P̃ᵀ dO and dK += dSᵀ q for this thread's keys × dims tx + KEY_THREADS · m.
    for (var r4 = 0u; r4 < KEY_THREADS; r4++) {
      var p4: array<vec4<f32>, ROWS>;
      var ds4: array<vec4<f32>, ROWS>;
      for (var t = 0u; t < ROWS; t++) {
        p4[t] = pt_tile[(ty * ROWS + t) * ROW_STRIDE + r4];
        ds4[t] = dst_tile[(ty * ROWS + t) * ROW_STRIDE + r4];
      }
      for (var m = 0u; m < DV_DIMS; m++) {
        let gradients = gt_tile[(tx + m * KEY_THREADS) * ROW_STRIDE + r4];
        for (var t = 0u; t < ROWS; t++) {
          dv_acc[t * DV_DIMS + m] += dot(p4[t], gradients);
        }
      }
      for (var m = 0u; m < DK_DIMS; m++) {
        let queries = qt_tile[(tx + m * KEY_THREADS) * ROW_STRIDE + r4];
        for (var t = 0u; t < ROWS; t++) {
          dk_acc[t * DK_DIMS + m] += dot(ds4[t], queries);
        }
      }
    }
  }

  workgroupBarrier();
  for (var t = 0u; t < ROWS; t++) {
    let j = first_key + t;
    if (j < key_end) {
      let poisoned = atomicLoad(&key_poisoned[ty * ROWS + t]) == 1u;
      let dk_address = params.dk_offset + b * params.dk_batch + kv_head * params.dk_head + (sequence.k_start + j) * params.dk_seq;
      let dv_address = params.dv_offset + b * params.dv_batch + kv_head * params.dv_head + (sequence.k_start + j) * params.dv_seq;
      for (var m = 0u; m < DK_DIMS; m++) {
        let d = tx + m * KEY_THREADS;
        if (d < dqk) {
          dk[dk_address + d * params.dk_dim] = select(${GRADIENT_T}(dk_acc[t * DK_DIMS + m]), ${GRADIENT_NAN}, poisoned);
        }
      }
      for (var m = 0u; m < DV_DIMS; m++) {
        let d = tx + m * KEY_THREADS;
        if (d < dvd) {
          dv[dv_address + d * params.dv_dim] = select(${GRADIENT_T}(dv_acc[t * DV_DIMS + m]), ${GRADIENT_NAN}, poisoned);
        }
      }
    }
  }
}

// What step 2 knows of a thread's four rows (row0 onwards): their logsumexp, residual, delta and key bounds; the
// thread's first key, batch, query head, its place in the workgroup (tx, ty) and the workgroup's first key octet.
struct RowQuad {
  lse: vec4<f32>,
  residual: vec4<f32>,
  delta: vec4<f32>,
  lo: vec4<i32>,
  hi: vec4<i32>,
  row0: u32,
  first_key: u32,
  b: u32,
  h: u32,
  tx: u32,
  ty: u32,
  octet_first: u32,
}

// P̃ᵀ and dSᵀ · scale of a thread's keys × four rows from Sᵀ and dPᵀ (weights and ds: 0 where the pair takes no
// part). With `bounded` false the caller knows every key inside every row's bounds and each row's logsumexp finite,
// and those tests fold away once the driver inlines the call.
fn quad_gradients(
  rows: RowQuad,
  bounded: bool,
  s: ptr<function, array<vec4<f32>, ROWS>>,
  dp: ptr<function, array<vec4<f32>, ROWS>>,
  weights: ptr<function, array<vec4<f32>, ROWS>>,
  ds: ptr<function, array<vec4<f32>, ROWS>>,
) {
  let negative_infinity = params.negative_infinity;
#if DROPOUT
  // The keep bits of each key's octet for the four rows, one vec4 read per key.
  var keep_quads: array<vec4<f32>, ROWS>;
  for (var t = 0u; t < ROWS; t++) {
    keep_quads[t] = dst_tile[(((rows.first_key + t) >> 3u) - rows.octet_first) * KEY_THREADS + rows.tx];
  }
#endif
  for (var u = 0u; u < 4u; u++) {
    let i = rows.row0 + u;
    let lse = rows.lse[u];
    let row_nan = is_nan(lse);
    // Rows without any allowed key (logsumexp −∞, also past the sequence or outside the dispatch's rows) take
    // no part.
    if (bounded && lse == negative_infinity) {
      continue;
    }
    for (var t = 0u; t < ROWS; t++) {
      let j = i32(rows.first_key + t);
      if (bounded && (j < rows.lo[u] || j > rows.hi[u])) {
        continue;
      }
      let capped = capped_score((*s)[t][u]);
      let score = masked_score(capped.x, rows.b, rows.h, i, u32(j));
      // Bits, not ==: the score of a NaN row may itself be NaN (only a removed pair is exactly −∞).
      if (bounded && row_nan && bitcast<u32>(score) != bitcast<u32>(negative_infinity)) {
        atomicStore(&key_poisoned[rows.ty * ROWS + t], 1u);
      } else if (score > negative_infinity) {
        let p = exp((score - lse) - rows.residual[u]);
#if DROPOUT
        let keep_bits = u32(keep_quads[t][u]);
        let keep = select(0.0, params.dropout_scale, ((keep_bits >> (u32(j) & 7u)) & 1u) == 1u);
#else
        let keep = 1.0;
#endif
        (*weights)[t][u] = p * keep;
        (*ds)[t][u] = p * ((*dp)[t][u] * keep - rows.delta[u]) * capped.y * params.scale;
      }
    }
  }
}

// This thread's share of query tile `tile`'s q and dO rows of head h (zero outside the dispatch's rows; q's NaN
// values as 0), and the logsumexp, residual and delta of the tile's row lid (−∞, 0, 0 outside the dispatch's rows:
// such rows take no part) with the keys of this dispatch it may attend. Read a step ahead, so that no step waits
// for them.
fn fetch_rows(h: u32, tile: u32, lid: u32, b: u32, sequence: Sequence, row_limit: u32, q_next: ptr<function, array<vec4<f32>, Q_LOADS>>, g_next: ptr<function, array<vec4<f32>, G_LOADS>>, stats_next: ptr<function, vec3<f32>>, bounds_next: ptr<function, vec2<i32>>) {
  let row0 = tile * BLOCK_M;
  var stats = vec3<f32>(params.negative_infinity, 0.0, 0.0);
  let i = row0 + lid;
  let bounds = key_bounds(i32(i), sequence);
  *bounds_next = vec2<i32>(bounds.x, min(bounds.y, i32(params.key_end) - 1));
  if (lid < BLOCK_M && i >= params.row_base && i < row_limit) {
    // Rows of the logsumexp and delta bindings (row-stats.ts).
    let row_index = (b * params.q_heads + h) * params.query_length + i;
    stats.x = logsumexp[row_index - params.lse_base];
    stats.z = delta[row_index - params.delta_base];
    if (params.lse_residual == 1u) {
      stats.y = logsumexp[params.lse_count + row_index - params.lse_base];
    }
  }
  *stats_next = stats;
  let q_base = params.q_offset + b * params.q_batch + h * params.q_head;
  let g_base = params.g_offset + b * params.g_batch + h * params.g_head;
  for (var n = 0u; n < Q_LOADS; n++) {
    let e = lid + n * THREADS;
    let i = row0 + e % BLOCK_M;
    var value = vec4<f32>(0.0);
    if (e < BLOCK_M * QK4 && i >= params.row_base && i < row_limit) {
      value = without_nan4(load_q4(q_base + (sequence.q_start + i) * params.q_seq, (e / BLOCK_M) * 4u, params.head_dim_qk, params.q_dim));
    }
    (*q_next)[n] = value;
  }
  for (var n = 0u; n < G_LOADS; n++) {
    let e = lid + n * THREADS;
    let i = row0 + e % BLOCK_M;
    var value = vec4<f32>(0.0);
    if (e < BLOCK_M * V4 && i >= params.row_base && i < row_limit) {
      value = load_grad_out4(g_base + (sequence.q_start + i) * params.g_seq, (e / BLOCK_M) * 4u, params.head_dim_v, params.g_dim);
    }
    (*g_next)[n] = value;
  }
}
