// FlashAttention forward (Dao et al.): one workgroup per tile of THREADS · ROWS query rows of one (batch, head);
// each thread owns ROWS consecutive rows (register tiling: every key/value element read from workgroup memory
// serves ROWS rows). Key/value tiles of BLOCK_N rows are staged in workgroup memory as vec4 (head dims padded
// with zeros to the compiled bucket, a multiple of 4); each row keeps an online softmax (running max m, running
// sum l, unnormalised output) in f32. Key tiles that no row of the workgroup may attend (causal, window, key
// padding, varlen bounds) are never loaded, and a thread stops at the last key its own rows may attend. Writes
// out and logsumexp = m + log l (−∞ and out = 0 for a row without any allowed key). When the logsumexp buffer has
// room for 2·B·Hq·L floats (params.lse_residual), the second half receives each row's rounding residual
// (m − lse) + log l.
//
// NaN inputs (as PyTorch's flash kernels): a NaN score of an allowed (row, key) pair (NaN in q row i or k row j)
// makes row i NaN (out and logsumexp); a NaN in v[j, d] makes out[i, d] NaN for the rows i that may attend key
// j. Keys row i may not attend (causal, window, padding, bool mask) never affect it. Scores are tested by their
// bits; NaN values of v are kept out of the tile and flagged per key, and only rows that may attend such a key
// read its values (so that the zero weight of a masked pair cannot turn them into NaN).

override THREADS: u32 = 64u;
override BLOCK_N: u32 = 16u;
const ROWS: u32 = ${ROWS}u;
const MAX_BLOCK_N: u32 = 32u;
const HEAD_DIM_QK: u32 = ${HEAD_DIM_QK}u;
const HEAD_DIM_V: u32 = ${HEAD_DIM_V}u;
const QK4: u32 = HEAD_DIM_QK / 4u;
const V4: u32 = HEAD_DIM_V / 4u;

// Row buffers as array<f32 or f16>, or as array<vec4<f32>> where their rows allow (vec4-loaders.ts).
@group(0) @binding(5) var<storage, read> q: array<${Q_ELEMENT}>;
@group(0) @binding(6) var<storage, read> k: array<${K_ELEMENT}>;
@group(0) @binding(7) var<storage, read> v: array<${V_ELEMENT}>;
@group(0) @binding(8) var<storage, read_write> out: array<${T}>;
@group(0) @binding(9) var<storage, read_write> logsumexp: array<f32>;

var<workgroup> k_tile: array<vec4<f32>, BLOCK_N * QK4>;
var<workgroup> v_tile: array<vec4<f32>, BLOCK_N * V4>;
// v_nan[c] == tile + 1: key c of this tile has a NaN in v; tile_v_nan == tile + 1: some key has (workgroup memory
// starts zeroed).
var<workgroup> v_nan: array<atomic<u32>, MAX_BLOCK_N>;
var<workgroup> tile_v_nan: atomic<u32>;
var<workgroup> sequence_shared: Sequence;

// load_q4, load_k4, ... (vec4-loaders.ts): elements d..d+3 of a row, zero at and past `dim`.
${VEC4_LOADERS}
@compute @workgroup_size(THREADS)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
  // Global indices: a chunked dispatch (binding-chunks.ts) covers batch entries, heads and rows from its bases.
  let b = params.batch_base + wid.z;
  let h = params.head_base + wid.y;
  let kv_head = h / (params.q_heads / params.kv_heads);
  let row0 = params.row_base + wid.x * THREADS * ROWS;
  let first_row = row0 + lid * ROWS;
  let batch_head = b * params.q_heads + h;
  if (lid == 0u) {
    sequence_shared = load_sequence(b);
  }
  let sequence = workgroupUniformLoad(&sequence_shared);
  let negative_infinity = params.negative_infinity;
  if (row0 >= sequence.q_len) {
    // Packed varlen: rows past this sequence's end get logsumexp −∞ (like the reference).
    for (var r = 0u; r < ROWS; r++) {
      if (first_row + r < params.row_end) {
        logsumexp[batch_head * params.query_length + first_row + r - params.lse_base] = negative_infinity;
      }
    }
    return;
  }
  let dqk = params.head_dim_qk;
  let dv = params.head_dim_v;

  // Rows this dispatch computes: the sequence's, up to the chunk's end (a workgroup may reach past it).
  let row_limit = min(sequence.q_len, params.row_end);
  let row_last = min(row0 + THREADS * ROWS, row_limit) - 1u;
  // The key tiles some row of this workgroup may attend.
  let attended = attended_key_tiles(row0, row_last, sequence, BLOCK_N);
  let tile_begin = attended.x;
  let tile_end = attended.y;

  // This thread's rows: query, bounds (inactive rows: empty), online-softmax state.
  var q_rows: array<vec4<f32>, ROWS * QK4>;
  var acc: array<vec4<f32>, ROWS * V4>;
  var lo: array<i32, ROWS>;
  var hi: array<i32, ROWS>;
  var m: array<f32, ROWS>;
  var l: array<f32, ROWS>;
  var poisoned: array<bool, ROWS>;
  var thread_hi = -1;
  for (var r = 0u; r < ROWS; r++) {
    let i = first_row + r;
    m[r] = negative_infinity;
    l[r] = 0.0;
    poisoned[r] = false;
    lo[r] = 1;
    hi[r] = 0;
    for (var d4 = 0u; d4 < V4; d4++) {
      acc[r * V4 + d4] = vec4<f32>(0.0);
    }
    for (var d4 = 0u; d4 < QK4; d4++) {
      q_rows[r * QK4 + d4] = vec4<f32>(0.0);
    }
    if (i < row_limit) {
      let bounds = key_bounds(i32(i), sequence);
      lo[r] = bounds.x;
      hi[r] = bounds.y;
      thread_hi = max(thread_hi, bounds.y);
      let q_base = params.q_offset + b * params.q_batch + h * params.q_head + (sequence.q_start + i) * params.q_seq;
      for (var d4 = 0u; d4 < QK4; d4++) {
        q_rows[r * QK4 + d4] = load_q4(q_base, d4 * 4u, dqk, params.q_dim);
      }
    }
  }
  let k_base = params.k_offset + b * params.k_batch + kv_head * params.k_head;
  let v_base = params.v_offset + b * params.v_batch + kv_head * params.v_head;

  let skips = mark_live_key_tiles(b, h, tile_begin * BLOCK_N, tile_end - tile_begin, BLOCK_N, lid, THREADS);
  for (var tile = tile_begin; tile < tile_end; tile++) {
    if (skips && !key_tile_live(tile - tile_begin)) {
      continue;
    }
    let key0 = tile * BLOCK_N;
    workgroupBarrier();
    for (var e = lid; e < BLOCK_N * QK4; e += THREADS) {
      let c = e / QK4;
      let j = key0 + c;
      var value = vec4<f32>(0.0);
      if (j < sequence.k_valid) {
        value = load_k4(k_base + (sequence.k_start + j) * params.k_seq, (e % QK4) * 4u, dqk, params.k_dim);
      }
      k_tile[e] = value;
    }
    for (var e = lid; e < BLOCK_N * V4; e += THREADS) {
      let c = e / V4;
      let j = key0 + c;
      var value = vec4<f32>(0.0);
      if (j < sequence.k_valid) {
        value = load_v4(v_base + (sequence.k_start + j) * params.v_seq, (e % V4) * 4u, dv, params.v_dim);
        if (any(is_nan4(value))) {
          atomicStore(&v_nan[c], tile + 1u);
          atomicStore(&tile_v_nan, tile + 1u);
          value = without_nan4(value);
        }
      }
      v_tile[e] = value;
    }
    workgroupBarrier();

    // Keys of this tile some row of this thread may attend.
    let keys = u32(clamp(thread_hi - i32(key0) + 1, 0, i32(BLOCK_N)));
    let v_has_nan = atomicLoad(&tile_v_nan) == tile + 1u;
    var scores: array<f32, ROWS * MAX_BLOCK_N>;
    var tile_max: array<f32, ROWS>;
    for (var r = 0u; r < ROWS; r++) {
      tile_max[r] = negative_infinity;
    }
    for (var c = 0u; c < keys; c++) {
      var dots: array<f32, ROWS>;
      for (var r = 0u; r < ROWS; r++) {
        dots[r] = 0.0;
      }
      for (var d4 = 0u; d4 < QK4; d4++) {
        let key = k_tile[c * QK4 + d4];
        for (var r = 0u; r < ROWS; r++) {
          dots[r] += dot(q_rows[r * QK4 + d4], key);
        }
      }
      let j = key0 + c;
      for (var r = 0u; r < ROWS; r++) {
        var score = negative_infinity;
        if (i32(j) >= lo[r] && i32(j) <= hi[r]) {
          score = masked_score(capped_score(dots[r]).x, b, h, first_row + r, j);
          if (is_nan(score)) {
            poisoned[r] = true;
            score = negative_infinity;
          }
        }
        scores[r * MAX_BLOCK_N + c] = score;
        tile_max[r] = max(tile_max[r], score);
      }
    }
    for (var r = 0u; r < ROWS; r++) {
      let m_new = max(m[r], tile_max[r]);
      // m = −∞: nothing accumulated yet (l and acc are 0).
      let correction = select(exp(m[r] - m_new), 0.0, m[r] == negative_infinity);
      if (correction != 1.0) {
        l[r] *= correction;
        for (var d4 = 0u; d4 < V4; d4++) {
          acc[r * V4 + d4] *= correction;
        }
      }
      m[r] = m_new;
    }
#if DROPOUT
    var words: array<vec4<u32>, ROWS>;
#endif
    for (var c = 0u; c < keys; c++) {
#if DROPOUT
      if ((c & 3u) == 0u) {
        for (var r = 0u; r < ROWS; r++) {
          words[r] = attention_dropout_words(dropout_stream(), batch_head, first_row + r, (key0 + c) >> 2u);
        }
      }
#endif
      var weights: array<f32, ROWS>;
      for (var r = 0u; r < ROWS; r++) {
        let score = scores[r * MAX_BLOCK_N + c];
        // score = −∞ (masked) gives 0, also when m is still −∞.
        let p = select(exp(score - m[r]), 0.0, score == negative_infinity);
        l[r] += p;
#if DROPOUT
        weights[r] = p * dropout_factor(words[r][c & 3u]);
#else
        weights[r] = p;
#endif
      }
      if (v_has_nan && atomicLoad(&v_nan[c]) == tile + 1u) {
        // Rare: key c's v row has NaN (kept out of the tile). Only rows that may attend key c take its values
        // from memory, NaN included; the others skip it (their zero weight times NaN would be NaN).
        let v_address = v_base + (sequence.k_start + key0 + c) * params.v_seq;
        for (var d4 = 0u; d4 < V4; d4++) {
          let value = load_v4(v_address, d4 * 4u, dv, params.v_dim);
          for (var r = 0u; r < ROWS; r++) {
            if (scores[r * MAX_BLOCK_N + c] != negative_infinity) {
              acc[r * V4 + d4] += weights[r] * value;
            }
          }
        }
        continue;
      }
      for (var d4 = 0u; d4 < V4; d4++) {
        let value = v_tile[c * V4 + d4];
        for (var r = 0u; r < ROWS; r++) {
          acc[r * V4 + d4] += weights[r] * value;
        }
      }
    }
  }

  for (var r = 0u; r < ROWS; r++) {
    let i = first_row + r;
    if (i < row_limit) {
      let o_base = params.o_offset + b * params.o_batch + h * params.o_head + (sequence.q_start + i) * params.o_seq;
      let inverse = select(0.0, 1.0 / l[r], l[r] > 0.0);
      for (var d = 0u; d < dv; d++) {
        var value = ${T}(acc[r * V4 + d / 4u][d % 4u] * inverse);
        if (poisoned[r]) {
          value = nan_stored();
        }
        out[o_base + d * params.o_dim] = value;
      }
      let lse_index = batch_head * params.query_length + i - params.lse_base;
      let log_sum = log(l[r]);
      let lse = m[r] + log_sum;
      logsumexp[lse_index] = select(select(negative_infinity, lse, l[r] > 0.0), nan_f32(), poisoned[r]);
      if (params.lse_residual == 1u) {
        // What rounding m + log l to f32 lost: backward subtracts it too, so P is exact even for huge logits. The
        // stored value goes through an XOR with a uniform zero so that no compiler folds (m − (m + log l)) + log l
        // to 0 algebraically (a driver doing so was seen to lose exactly this residual).
        let stored = bitcast<f32>(bitcast<u32>(lse) ^ params.opaque_zero);
        logsumexp[params.lse_count + lse_index] = select(0.0, (m[r] - stored) + log_sum, l[r] > 0.0);
      }
    } else if (i < params.row_end) {
      logsumexp[batch_head * params.query_length + i - params.lse_base] = negative_infinity;
    }
  }
}
