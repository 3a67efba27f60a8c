// FlashAttention forward (Dao et al.) as two small matrix products per key tile, each thread owning a register
// block of both (the SIMT GEMM layout): one workgroup per tile of BR = (THREADS / KEY_THREADS) · ROWS query rows
// of one (batch, head). Threads form a grid of row groups (ty) × KEY_THREADS (tx); thread (ty, tx) owns query
// rows ty·ROWS .. ty·ROWS + ROWS − 1 of the tile and
// - in S = q kᵀ: those rows × the 4 keys tx·4 .. tx·4 + 3 of each BC = 4·KEY_THREADS-key tile;
// - in O += P v: those rows × the output dims (vec4 columns) j·KEY_THREADS + tx.
// q is staged once, kᵀ (transposed, 4 keys per vec4) and v once per key tile, P per key tile, all in workgroup
// memory as f32 (the next key tile's k and v are read into registers while this one is computed: bench notes,
// entry 26); every per-thread array has a compile-time size and is indexed by unrolled constant loops, so it
// lives in registers. A row's tile maximum is reduced over its KEY_THREADS threads through workgroup memory; its
// sum l stays split over them until the end. With SHUFFLE_P (subgroups of at least KEY_THREADS lanes, small head
// dims: bench notes, entry 26) the maximum and P go through subgroup shuffles instead, two barriers fewer per tile.
// Online softmax (running max m, sum l, unnormalised output) in f32.
// Key tiles that no row of the workgroup may attend (causal, window, key padding, varlen bounds) are never loaded;
// a row whose bounds hold all four of a thread's keys skips the bound tests (quad_scores compiled twice through
// inlining: bench notes, entry 41).
// Writes out and logsumexp = m + log l (−∞ and out = 0 for a row without any allowed key). When the logsumexp
// buffer has room for 2·B·Hq·L floats (params.lse_residual), the second half receives each row's rounding residual
// (m − lse) + log l.
//
// NaN inputs (as PyTorch's flash kernels): a NaN score of an allowed (row, key) pair (NaN in q row i or k row j)
// makes row i NaN (out and logsumexp); a NaN in v[j, d] makes out[i, d] NaN for the rows i that may attend key
// j. Keys row i may not attend (causal, window, padding, bool mask) never affect it. Scores are tested by their
// bits; NaN values of v are kept out of the tile and flagged per key, and only rows that may attend such a key
// read its values from memory.

override THREADS: u32 = 128u;
const ROWS: u32 = ${ROWS}u;
const KEY_THREADS: u32 = ${KEY_THREADS}u;
const BLOCK_N: u32 = 4u * KEY_THREADS;
const HEAD_DIM_QK: u32 = ${HEAD_DIM_QK}u;
const HEAD_DIM_V: u32 = ${HEAD_DIM_V}u;
const QK4: u32 = HEAD_DIM_QK / 4u;
const V4: u32 = HEAD_DIM_V / 4u;
// Output vec4 columns per thread.
const OUT4: u32 = V4 / KEY_THREADS;
// Padded row strides (in vec4) of the q and P tiles, so that the rows a subgroup reads fall in different banks.
const Q_STRIDE: u32 = QK4 + 1u;
const P_STRIDE: u32 = KEY_THREADS + 1u;
// Key and value vec4s each thread reads per key tile.
const K_LOADS: u32 = ${K_LOADS}u;
const V_LOADS: u32 = ${V_LOADS}u;

// Row buffers as array<f32 or f16>, or as array<vec4<f32>> where their rows allow (vec4-loaders.ts).
@group(0) @binding(5) var<storage, read> q: array<${Q_ELEMENT}>;
@group(0) @binding(6) var<storage, read> k: array<${K_ELEMENT}>;
@group(0) @binding(7) var<storage, read> v: array<${V_ELEMENT}>;
@group(0) @binding(8) var<storage, read_write> out: array<${T}>;
@group(0) @binding(9) var<storage, read_write> logsumexp: array<f32>;

var<workgroup> q_tile: array<vec4<f32>, THREADS / KEY_THREADS * ROWS * Q_STRIDE>;
// kt_tile[d · KEY_THREADS + c4] = keys 4·c4 .. 4·c4 + 3 of the tile at dim d.
var<workgroup> kt_tile: array<vec4<f32>, HEAD_DIM_QK * KEY_THREADS>;
var<workgroup> v_tile: array<vec4<f32>, BLOCK_N * V4>;
#if !SHUFFLE_P
// p_tile[r · P_STRIDE + c4] = weights of row r for keys 4·c4 .. 4·c4 + 3.
var<workgroup> p_tile: array<vec4<f32>, THREADS / KEY_THREADS * ROWS * P_STRIDE>;
#endif
// Per row, one value per key thread: tile maxima, then at the end the partial sums l.
var<workgroup> row_partials: array<f32, THREADS * ROWS>;
// v_nan[c] == tile + 1: key c of this tile has a NaN in v; tile_v_nan == tile + 1: some key has (workgroup memory
// starts zeroed).
var<workgroup> v_nan: array<atomic<u32>, BLOCK_N>;
var<workgroup> tile_v_nan: atomic<u32>;
var<workgroup> sequence_shared: Sequence;

// load_q4, load_k4, ... (vec4-loaders.ts): elements d..d+3 of a row, zero at and past `dim`.
${VEC4_LOADERS}
@compute @workgroup_size(THREADS)
fn main(
  @builtin(local_invocation_index) lid: u32,
#if SHUFFLE_P
  @builtin(subgroup_invocation_id) lane: u32,
#endif
  @builtin(workgroup_id) grid_id: vec3<u32>,
  @builtin(num_workgroups) groups: vec3<u32>,
) {
  // Under a banded mask the heaviest row blocks first (flash-common.wgsl); otherwise the plain order, x fastest.
  let wid = select(grid_id, plane_chunked_workgroup(grid_id, groups, later_rows_heavier()), banded());
  let block_rows = THREADS / KEY_THREADS * ROWS;
  let tx = lid % KEY_THREADS;
  let ty = lid / KEY_THREADS;
  // Global indices: a chunked dispatch (binding-chunks.ts) covers batch entries, heads and rows from its bases.
  let b = params.batch_base + wid.z;
  let h = params.head_base + wid.y;
  let kv_head = h / (params.q_heads / params.kv_heads);
  let row0 = params.row_base + wid.x * block_rows;
  let first_row = row0 + ty * ROWS;
  let batch_head = b * params.q_heads + h;
  if (lid == 0u) {
    sequence_shared = load_sequence(b);
  }
  let sequence = workgroupUniformLoad(&sequence_shared);
  let negative_infinity = params.negative_infinity;
  if (row0 >= sequence.q_len) {
    // Packed varlen: rows past this sequence's end get logsumexp −∞ (like the reference).
    for (var r = lid; r < block_rows; r += THREADS) {
      if (row0 + r < params.row_end) {
        logsumexp[batch_head * params.query_length + row0 + r - params.lse_base] = negative_infinity;
      }
    }
    return;
  }
  let dqk = params.head_dim_qk;
  let dv = params.head_dim_v;

  // Rows this dispatch computes: the sequence's, up to the chunk's end (a workgroup may reach past it).
  let row_limit = min(sequence.q_len, params.row_end);
  let row_last = min(row0 + block_rows, row_limit) - 1u;
  // The key tiles some row of this workgroup may attend.
  let attended = attended_key_tiles(row0, row_last, sequence, BLOCK_N);
  let tile_begin = attended.x;
  let tile_end = attended.y;

  // The workgroup's query rows (zero past the rows it computes).
  for (var e = lid; e < block_rows * QK4; e += THREADS) {
    let r = e / QK4;
    let i = row0 + r;
    var value = vec4<f32>(0.0);
    if (i < row_limit) {
      let q_base = params.q_offset + b * params.q_batch + h * params.q_head + (sequence.q_start + i) * params.q_seq;
      value = load_q4(q_base, (e % QK4) * 4u, dqk, params.q_dim);
    }
    q_tile[r * Q_STRIDE + e % QK4] = value;
  }

  // This thread's rows: bounds (inactive rows: empty) and online-softmax state.
  var lo: array<i32, ROWS>;
  var hi: array<i32, ROWS>;
  var m: array<f32, ROWS>;
  var l: array<f32, ROWS>;
  var poisoned: array<bool, ROWS>;
  var acc: array<vec4<f32>, ROWS * OUT4>;
  for (var r = 0u; r < ROWS; r++) {
    m[r] = negative_infinity;
    l[r] = 0.0;
    poisoned[r] = false;
    lo[r] = 1;
    hi[r] = 0;
    if (first_row + r < row_limit) {
      let bounds = key_bounds(i32(first_row + r), sequence);
      lo[r] = bounds.x;
      hi[r] = bounds.y;
    }
    for (var j = 0u; j < OUT4; j++) {
      acc[r * OUT4 + j] = vec4<f32>(0.0);
    }
  }
  let k_base = params.k_offset + b * params.k_batch + kv_head * params.k_head;
  let v_base = params.v_offset + b * params.v_batch + kv_head * params.v_head;

  let skips = mark_live_key_tiles(b, h, tile_begin * BLOCK_N, tile_end - tile_begin, BLOCK_N, lid, THREADS);
  // The next live tile's k and v rows are read into registers while this tile is computed.
  var k_next: array<vec4<f32>, K_LOADS>;
  var v_next: array<vec4<f32>, V_LOADS>;
  var tile = next_live_tile(tile_begin, tile_begin, tile_end, skips);
  if (tile < tile_end) {
    fetch_tile(tile, lid, k_base, v_base, sequence, &k_next, &v_next);
  }
  while (tile < tile_end) {
    let key0 = tile * BLOCK_N;
    workgroupBarrier();
    // kᵀ from the registers: consecutive threads hold consecutive keys of one dim quad (conflict-free stores).
    for (var n = 0u; n < K_LOADS; n++) {
      let e = lid + n * THREADS;
      if (e < BLOCK_N * QK4) {
        let c = e % BLOCK_N;
        let d4 = e / BLOCK_N;
        for (var t = 0u; t < 4u; t++) {
          kt_tile[(d4 * 4u + t) * KEY_THREADS + c / 4u][c % 4u] = k_next[n][t];
        }
      }
    }
    for (var n = 0u; n < V_LOADS; n++) {
      let e = lid + n * THREADS;
      if (e < BLOCK_N * V4) {
        var value = v_next[n];
        if (any(is_nan4(value))) {
          atomicStore(&v_nan[e / V4], tile + 1u);
          atomicStore(&tile_v_nan, tile + 1u);
          value = without_nan4(value);
        }
        v_tile[e] = value;
      }
    }
    workgroupBarrier();
    let following = next_live_tile(tile + 1u, tile_begin, tile_end, skips);
    if (following < tile_end) {
      fetch_tile(following, lid, k_base, v_base, sequence, &k_next, &v_next);
    }

    // S = q kᵀ for this thread's rows × keys key0 + 4·tx .. + 3.
    var s: array<vec4<f32>, ROWS>;
    for (var r = 0u; r < ROWS; r++) {
      s[r] = vec4<f32>(0.0);
    }
    // Each row's maximum over this thread's keys, then over the tile; the weights P of this thread's rows × keys.
    var tile_maxima: array<f32, ROWS>;
    var weights: array<vec4<f32>, ROWS>;
    for (var d4 = 0u; d4 < QK4; d4++) {
      var q4: array<vec4<f32>, ROWS>;
      for (var r = 0u; r < ROWS; r++) {
        q4[r] = q_tile[(ty * ROWS + r) * Q_STRIDE + d4];
      }
      for (var t = 0u; t < 4u; t++) {
        let keys = kt_tile[(d4 * 4u + t) * KEY_THREADS + tx];
        for (var r = 0u; r < ROWS; r++) {
          s[r] += q4[r][t] * keys;
        }
      }
    }
    // Scores (−∞ where masked) and each row's maximum over this thread's keys.
    let key_first = key0 + 4u * tx;
    for (var r = 0u; r < ROWS; r++) {
      // A row whose bounds hold all four keys takes the form without bound tests.
      let inside = i32(key_first) >= lo[r] && i32(key_first + 3u) <= hi[r];
      var row_poisoned = poisoned[r];
      if (inside) {
        s[r] = quad_scores(false, s[r], lo[r], hi[r], b, h, first_row + r, key_first, &row_poisoned);
      } else {
        s[r] = quad_scores(true, s[r], lo[r], hi[r], b, h, first_row + r, key_first, &row_poisoned);
      }
      poisoned[r] = row_poisoned;
      tile_maxima[r] = max(max(s[r].x, s[r].y), max(s[r].z, s[r].w));
    }
#if SHUFFLE_P
    // The row's KEY_THREADS threads are adjacent lanes of one subgroup.
    for (var r = 0u; r < ROWS; r++) {
      for (var lanes = 1u; lanes < KEY_THREADS; lanes <<= 1u) {
        tile_maxima[r] = max(tile_maxima[r], subgroupShuffleXor(tile_maxima[r], lanes));
      }
    }
#else
    for (var r = 0u; r < ROWS; r++) {
      row_partials[(ty * ROWS + r) * KEY_THREADS + tx] = tile_maxima[r];
    }
    workgroupBarrier();
    for (var r = 0u; r < ROWS; r++) {
      for (var t = 0u; t < KEY_THREADS; t++) {
        tile_maxima[r] = max(tile_maxima[r], row_partials[(ty * ROWS + r) * KEY_THREADS + t]);
      }
    }
#endif

    // Rescale to the rows' new maxima, then P = exp(S − m) (with dropout) into workgroup memory.
    for (var r = 0u; r < ROWS; r++) {
      let m_new = max(m[r], tile_maxima[r]);
      // m = −∞: nothing accumulated yet (l and acc are 0).
      let correction = select(exp(m[r] - m_new), 0.0, m[r] == negative_infinity);
      l[r] *= correction;
      for (var j = 0u; j < OUT4; j++) {
        acc[r * OUT4 + j] *= correction;
      }
      m[r] = m_new;
      // score = −∞ (masked) gives 0, also when m is still −∞.
      let masked = s[r] == vec4<f32>(negative_infinity);
      let p = select(exp(s[r] - vec4<f32>(m_new)), vec4<f32>(0.0), masked);
      l[r] += p.x + p.y + p.z + p.w;
#if DROPOUT
      let words = attention_dropout_words(dropout_stream(), batch_head, first_row + r, key_first >> 2u);
      let kept = vec4<f32>(dropout_factor(words.x), dropout_factor(words.y), dropout_factor(words.z), dropout_factor(words.w));
      weights[r] = p * kept;
#else
      weights[r] = p;
#endif
    }
#if SHUFFLE_P
    // The lanes of this thread's row group, whose weights P · v reads.
    let group_lane = lane & ~(KEY_THREADS - 1u);
#else
    for (var r = 0u; r < ROWS; r++) {
      p_tile[(ty * ROWS + r) * P_STRIDE + tx] = weights[r];
    }
    workgroupBarrier();
#endif

    // O += P v for this thread's rows × output columns j·KEY_THREADS + tx.
    for (var c4 = 0u; c4 < KEY_THREADS; c4++) {
      var p4: array<vec4<f32>, ROWS>;
      for (var r = 0u; r < ROWS; r++) {
#if SHUFFLE_P
        p4[r] = subgroupShuffle(weights[r], group_lane | c4);
#else
        p4[r] = p_tile[(ty * ROWS + r) * P_STRIDE + c4];
#endif
      }
      for (var t = 0u; t < 4u; t++) {
        for (var j = 0u; j < OUT4; j++) {
          let values = v_tile[(c4 * 4u + t) * V4 + j * KEY_THREADS + tx];
          for (var r = 0u; r < ROWS; r++) {
            acc[r * OUT4 + j] += p4[r][t] * values;
          }
        }
      }
    }
    if (atomicLoad(&tile_v_nan) == tile + 1u) {
      // Rare: some keys' v rows have NaN (kept out of the tile). Rows that may attend such a key add its NaN
      // values from memory; the others skip it (their zero weight times NaN would be NaN).
      for (var c = 0u; c < BLOCK_N; c++) {
        if (atomicLoad(&v_nan[c]) != tile + 1u) {
          continue;
        }
        let j = key0 + c;
        let v_address = v_base + (sequence.k_start + j) * params.v_seq;
        for (var r = 0u; r < ROWS; r++) {
          let masked = i32(j) < lo[r] || i32(j) > hi[r] || masked_score(0.0, b, h, first_row + r, j) == negative_infinity;
#if SHUFFLE_P
          // Every lane of a row group takes this branch alike (the shuffle reads a lane of the same group).
          let weight = subgroupShuffle(weights[r], group_lane | (c / 4u))[c % 4u];
#else
          let weight = p_tile[(ty * ROWS + r) * P_STRIDE + c / 4u][c % 4u];
#endif
          if (masked) {
            continue;
          }
          for (var j = 0u; j < OUT4; j++) {
            let values = load_v4(v_address, (j * KEY_THREADS + tx) * 4u, dv, params.v_dim);
            acc[r * OUT4 + j] += select(vec4<f32>(0.0), weight * values, is_nan4(values));
          }
        }
      }
    }
    tile = following;
  }

  // Each row's sum l over its key threads (NaN marks a poisoned row).
  for (var r = 0u; r < ROWS; r++) {
    row_partials[(ty * ROWS + r) * KEY_THREADS + tx] = select(l[r], nan_f32(), poisoned[r]);
  }
  workgroupBarrier();
  for (var r = 0u; r < ROWS; r++) {
    let i = first_row + r;
    var total = 0.0;
    for (var t = 0u; t < KEY_THREADS; t++) {
      total += row_partials[(ty * ROWS + r) * KEY_THREADS + t];
    }
    let row_poisoned = is_nan(total);
    if (i < row_limit) {
      let o_base = params.o_offset + b * params.o_batch + h * params.o_head + (sequence.q_start + i) * params.o_seq;
      let inverse = select(0.0, 1.0 / total, total > 0.0);
      for (var j = 0u; j < OUT4; j++) {
        let d0 = (j * KEY_THREADS + tx) * 4u;
        for (var t = 0u; t < 4u; t++) {
          if (d0 + t < dv) {
            var value = ${T}(acc[r * OUT4 + j][t] * inverse);
            if (row_poisoned) {
              value = nan_stored();
            }
            out[o_base + (d0 + t) * params.o_dim] = value;
          }
        }
      }
      if (tx == 0u) {
        let lse_index = batch_head * params.query_length + i - params.lse_base;
        let log_sum = log(total);
        let lse = m[r] + log_sum;
        logsumexp[lse_index] = select(select(negative_infinity, lse, total > 0.0), nan_f32(), row_poisoned);
        if (params.lse_residual == 1u) {
          // What rounding m + log l to f32 lost: backward subtracts it too, so P is exact even for huge logits.
          // The stored value goes through an XOR with a uniform zero so that no compiler folds
          // (m − (m + log l)) + log l to 0 algebraically (a driver doing so was seen to lose exactly this residual).
          let stored = bitcast<f32>(bitcast<u32>(lse) ^ params.opaque_zero);
          logsumexp[params.lse_count + lse_index] = select(0.0, (m[r] - stored) + log_sum, total > 0.0);
        }
      }
    } else if (i < params.row_end && tx == 0u) {
      logsumexp[batch_head * params.query_length + i - params.lse_base] = negative_infinity;
    }
  }
}

// The scores of keys key_first .. + 3 for row i from their dot products: scale and softcap, the masks, −∞ outside
// the row's bounds [lo, hi] and for NaN scores (which set *poisoned). With `bounded` false the caller knows the four
// keys inside the bounds, and the tests fold away once the driver inlines the call.
fn quad_scores(bounded: bool, dots: vec4<f32>, lo: i32, hi: i32, b: u32, h: u32, i: u32, key_first: u32, poisoned: ptr<function, bool>) -> vec4<f32> {
  let negative_infinity = params.negative_infinity;
  var scores = vec4<f32>(negative_infinity);
  for (var t = 0u; t < 4u; t++) {
    let j = key_first + t;
    if (!bounded || (i32(j) >= lo && i32(j) <= hi)) {
      var score = masked_score(capped_score(dots[t]).x, b, h, i, j);
      if (is_nan(score)) {
        *poisoned = true;
        score = negative_infinity;
      }
      scores[t] = score;
    }
  }
  return scores;
}

// This thread's share of tile `tile`'s k and v rows (zero past the sequence's keys).
fn fetch_tile(tile: u32, lid: u32, k_base: u32, v_base: u32, sequence: Sequence, k_next: ptr<function, array<vec4<f32>, K_LOADS>>, v_next: ptr<function, array<vec4<f32>, V_LOADS>>) {
  let key0 = tile * BLOCK_N;
  for (var n = 0u; n < K_LOADS; n++) {
    let e = lid + n * THREADS;
    let j = key0 + e % BLOCK_N;
    var value = vec4<f32>(0.0);
    if (e < BLOCK_N * QK4 && j < sequence.k_valid) {
      value = load_k4(k_base + (sequence.k_start + j) * params.k_seq, (e / BLOCK_N) * 4u, params.head_dim_qk, params.k_dim);
    }
    (*k_next)[n] = value;
  }
  for (var n = 0u; n < V_LOADS; n++) {
    let e = lid + n * THREADS;
    let j = key0 + e / V4;
    var value = vec4<f32>(0.0);
    if (e < BLOCK_N * V4 && j < sequence.k_valid) {
      value = load_v4(v_base + (sequence.k_start + j) * params.v_seq, (e % V4) * 4u, params.head_dim_v, params.v_dim);
    }
    (*v_next)[n] = value;
  }
}
