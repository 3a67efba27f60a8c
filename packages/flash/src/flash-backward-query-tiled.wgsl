// FlashAttention-2 backward for dQ, tiled like flash-forward-tiled.wgsl (the pair the tiled forward runs with):
// one workgroup per tile of BR = (THREADS / KEY_THREADS) · ROWS query rows of one (batch, head), threads in a
// grid of row groups (ty) × KEY_THREADS (tx). Per key tile of BLOCK_N = 4 · KEY_THREADS keys (the next one's k and
// v read into registers while this one is computed), thread (ty, tx) computes S = q kᵀ and dP = dO vᵀ for its ROWS
// rows × keys 4·tx .. 4·tx + 3 (the forward's summation order, so P = exp(S − logsumexp) is exact),
// dS = P ∘ (dP̃ − delta) into workgroup memory, then dQ += dS K · scale for its rows × head dims tx,
// tx + KEY_THREADS, ... (read from the transposed key tile). No atomics: deterministic. Compiled with PAIRED_BLOCKS
// (causal or one-sided windows at small head dims: balanced-blocks.ts), a workgroup takes a row block and its mirror.
// A row whose logsumexp is NaN (the forward found a NaN it may attend) gets a NaN dQ; NaN keys are kept out of
// the K tile (every row that may attend them is such a row), so that the zero dS of a masked pair cannot spread
// them.
//
// When the keys do not fit a storage binding, the recording splits them (binding-chunks.ts): each dispatch covers
// the key tiles of [key_base, key_end) (multiples of BLOCK_N), in the unsplit order. This source is then compiled
// with ${GRADIENT_T} = f32: dq is f32 scratch holding the running sums, loaded at the start when
// params.dq_partial is 1 (so the sums continue exactly), and flash-backward-query-finish.wgsl writes them out.

override THREADS: u32 = 128u;
const ROWS: u32 = ${ROWS}u;
const KEY_THREADS: u32 = ${KEY_THREADS}u;
const BLOCK_N: u32 = 4u * KEY_THREADS;
const HEAD_DIM_QK: u32 = ${HEAD_DIM_QK}u;
const HEAD_DIM_V: u32 = ${HEAD_DIM_V}u;
const QK4: u32 = HEAD_DIM_QK / 4u;
const V4: u32 = HEAD_DIM_V / 4u;
// dQ head dims per thread: tx + KEY_THREADS · m.
const DQ_DIMS: u32 = HEAD_DIM_QK / KEY_THREADS;
// Padded row strides (in vec4), so that the rows a subgroup reads fall in different banks.
const Q_STRIDE: u32 = QK4 + 1u;
const G_STRIDE: u32 = V4 + 1u;
const KEY_STRIDE: u32 = KEY_THREADS + 1u;
// Key and value vec4s each thread reads per key tile.
const K_LOADS: u32 = ${K_LOADS}u;
const V_LOADS: u32 = ${V_LOADS}u;

// Row buffers as array<f32 or f16>, or as array<vec4<f32>> where their rows allow (vec4-loaders.ts).
@group(0) @binding(5) var<storage, read> q: array<${Q_ELEMENT}>;
@group(0) @binding(6) var<storage, read> k: array<${K_ELEMENT}>;
@group(0) @binding(7) var<storage, read> v: array<${V_ELEMENT}>;
@group(0) @binding(8) var<storage, read> grad_out: array<${GRAD_OUT_ELEMENT}>;
@group(0) @binding(9) var<storage, read> logsumexp: array<f32>;
@group(0) @binding(10) var<storage, read> delta: array<f32>;
@group(0) @binding(11) var<storage, read_write> dq: array<${GRADIENT_T}>;

var<workgroup> q_tile: array<vec4<f32>, THREADS / KEY_THREADS * ROWS * Q_STRIDE>;
var<workgroup> g_tile: array<vec4<f32>, THREADS / KEY_THREADS * ROWS * G_STRIDE>;
// kt_tile[d · KEY_STRIDE + c4] = keys 4·c4 .. 4·c4 + 3 of the tile at dim d (vt_tile likewise for v).
var<workgroup> kt_tile: array<vec4<f32>, HEAD_DIM_QK * KEY_STRIDE>;
var<workgroup> vt_tile: array<vec4<f32>, HEAD_DIM_V * KEY_STRIDE>;
// ds_tile[r · KEY_STRIDE + c4] = dS · scale of row r for keys 4·c4 .. 4·c4 + 3.
var<workgroup> ds_tile: array<vec4<f32>, THREADS / KEY_THREADS * ROWS * KEY_STRIDE>;
var<workgroup> sequence_shared: Sequence;

// load_q4, load_k4, ... (vec4-loaders.ts): elements d..d+3 of a row, zero at and past `dim`.
${VEC4_LOADERS}
#if PAIRED_BLOCKS
@compute @workgroup_size(THREADS)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
  // Causal balance (flash-common.wgsl's mirrored_block): then the row block whose key range complements this one's.
  // One call site, so that the block's code is not there twice.
  let mirrored = mirrored_block(wid.x, params.row_end - params.row_base, THREADS / KEY_THREADS * ROWS);
  let blocks = select(1u, 2u, mirrored != wid.x);
  for (var turn = 0u; turn < blocks; turn++) {
    if (turn == 1u) {
      // Every thread is done with the first block's tiles before the second block stages its rows.
      workgroupBarrier();
    }
    gradient_row_block(lid, vec3<u32>(select(wid.x, mirrored, turn == 1u), wid.y, wid.z));
  }
}

// dQ of one row block, wid.x being the block. Unpaired, this code is main itself, as before pairing
// (as a function called from main it ran the D64 backward 4–5% slower: bench notes, entry 29).
fn gradient_row_block(lid: u32, wid: vec3<u32>) {
#else
@compute @workgroup_size(THREADS)
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
#endif
  let block_rows = THREADS / KEY_THREADS * ROWS;
  let tx = lid % KEY_THREADS;
  let ty = lid / KEY_THREADS;
  // Global indices: a chunked dispatch (binding-chunks.ts) covers batch entries, heads and rows from its bases.
  let b = params.batch_base + wid.z;
  let h = params.head_base + wid.y;
  let kv_head = h / (params.q_heads / params.kv_heads);
  let row0 = params.row_base + wid.x * block_rows;
  let first_row = row0 + ty * ROWS;
  if (lid == 0u) {
    sequence_shared = load_sequence(b);
  }
  let sequence = workgroupUniformLoad(&sequence_shared);
  if (row0 >= sequence.q_len) {
    return;
  }
  let dqk = params.head_dim_qk;
  let dvd = params.head_dim_v;
  let negative_infinity = params.negative_infinity;

  // Rows this dispatch computes: the sequence's, up to the chunk's end (a workgroup may reach past it).
  let row_limit = min(sequence.q_len, params.row_end);
  let row_last = min(row0 + block_rows, row_limit) - 1u;
  // The key tiles some row of this workgroup may attend.
  let attended = attended_key_tiles(row0, row_last, sequence, BLOCK_N);
  var tile_begin = attended.x;
  var tile_end = attended.y;
  // This dispatch's keys (all of them unless split; the split points are multiples of BLOCK_N).
  tile_begin = max(tile_begin, params.key_base / BLOCK_N);
  tile_end = min(tile_end, (params.key_end + BLOCK_N - 1u) / BLOCK_N);

  // The workgroup's query and output-gradient rows (zero past the rows it computes).
  for (var e = lid; e < block_rows * QK4; e += THREADS) {
    let i = row0 + e / QK4;
    var value = vec4<f32>(0.0);
    if (i < row_limit) {
      let q_address = params.q_offset + b * params.q_batch + h * params.q_head + (sequence.q_start + i) * params.q_seq;
      value = load_q4(q_address, (e % QK4) * 4u, dqk, params.q_dim);
    }
    q_tile[(e / QK4) * Q_STRIDE + e % QK4] = value;
  }
  for (var e = lid; e < block_rows * V4; e += THREADS) {
    let i = row0 + e / V4;
    var value = vec4<f32>(0.0);
    if (i < row_limit) {
      let g_address = params.g_offset + b * params.g_batch + h * params.g_head + (sequence.q_start + i) * params.g_seq;
      value = load_grad_out4(g_address, (e % V4) * 4u, dvd, params.g_dim);
    }
    g_tile[(e / V4) * G_STRIDE + e % V4] = value;
  }

  let batch_head = b * params.q_heads + h;
  // This thread's rows (inactive rows and rows without any allowed key: empty bounds).
  var dq_acc: array<f32, ROWS * DQ_DIMS>;
  var lo: array<i32, ROWS>;
  var hi: array<i32, ROWS>;
  var lse: array<f32, ROWS>;
  var lse_residual: array<f32, ROWS>;
  var row_delta: array<f32, ROWS>;
  var poisoned: array<bool, ROWS>;
  for (var r = 0u; r < ROWS; r++) {
    let i = first_row + r;
    lo[r] = 1;
    hi[r] = 0;
    lse[r] = negative_infinity;
    lse_residual[r] = 0.0;
    row_delta[r] = 0.0;
    poisoned[r] = false;
    for (var m = 0u; m < DQ_DIMS; m++) {
      dq_acc[r * DQ_DIMS + m] = 0.0;
    }
    if (i < row_limit) {
      // Rows of the logsumexp and delta bindings (row-stats.ts).
      let row_index = batch_head * params.query_length + i;
      lse[r] = logsumexp[row_index - params.lse_base];
      if (params.lse_residual == 1u) {
        lse_residual[r] = logsumexp[params.lse_count + row_index - params.lse_base];
      }
      row_delta[r] = delta[row_index - params.delta_base];
      poisoned[r] = is_nan(lse[r]);
      if (!poisoned[r] && lse[r] > negative_infinity) {
        let bounds = key_bounds(i32(i), sequence);
        lo[r] = bounds.x;
        hi[r] = bounds.y;
      }
      if (params.dq_partial == 1u) {
        // Continue the sums of the previous key chunks (f32 scratch, see the header).
        let dq_address = params.dq_offset + b * params.dq_batch + h * params.dq_head + (sequence.q_start + i) * params.dq_seq;
        for (var m = 0u; m < DQ_DIMS; m++) {
          let d = tx + m * KEY_THREADS;
          if (d < dqk) {
            dq_acc[r * DQ_DIMS + m] = f32(dq[dq_address + d * params.dq_dim]);
          }
        }
      }
    }
  }
  let k_base = params.k_offset + b * params.k_batch + kv_head * params.k_head;
  let v_base = params.v_offset + b * params.v_batch + kv_head * params.v_head;

  let skips = mark_live_key_tiles(b, h, tile_begin * BLOCK_N, max(tile_end, tile_begin) - tile_begin, BLOCK_N, lid, THREADS);
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
    // kᵀ and vᵀ from the registers: consecutive threads hold consecutive keys of one dim quad (conflict-free stores).
    for (var n = 0u; n < K_LOADS; n++) {
      let e = lid + n * THREADS;
      if (e < BLOCK_N * QK4) {
        let c = e % BLOCK_N;
        let d4 = e / BLOCK_N;
        for (var t = 0u; t < 4u; t++) {
          kt_tile[(d4 * 4u + t) * KEY_STRIDE + c / 4u][c % 4u] = k_next[n][t];
        }
      }
    }
    for (var n = 0u; n < V_LOADS; n++) {
      let e = lid + n * THREADS;
      if (e < BLOCK_N * V4) {
        let c = e % BLOCK_N;
        let d4 = e / BLOCK_N;
        for (var t = 0u; t < 4u; t++) {
          vt_tile[(d4 * 4u + t) * KEY_STRIDE + c / 4u][c % 4u] = v_next[n][t];
        }
      }
    }
    workgroupBarrier();
    let following = next_live_tile(tile + 1u, tile_begin, tile_end, skips);
    if (following < tile_end) {
      fetch_tile(following, lid, k_base, v_base, sequence, &k_next, &v_next);
    }

    // S = q kᵀ and dP = dO vᵀ for this thread's rows × keys key0 + 4·tx .. + 3 (the forward's order).
    var s: array<vec4<f32>, ROWS>;
    var dp: array<vec4<f32>, ROWS>;
    for (var r = 0u; r < ROWS; r++) {
      s[r] = vec4<f32>(0.0);
      dp[r] = vec4<f32>(0.0);
    }
    for (var d4 = 0u; d4 < QK4; d4++) {
      var q4: array<vec4<f32>, ROWS>;
      for (var r = 0u; r < ROWS; r++) {
        q4[r] = q_tile[(ty * ROWS + r) * Q_STRIDE + d4];
      }
      for (var t = 0u; t < 4u; t++) {
        let keys = kt_tile[(d4 * 4u + t) * KEY_STRIDE + tx];
        for (var r = 0u; r < ROWS; r++) {
          s[r] += q4[r][t] * keys;
        }
      }
    }
    for (var d4 = 0u; d4 < V4; d4++) {
      var g4: array<vec4<f32>, ROWS>;
      for (var r = 0u; r < ROWS; r++) {
        g4[r] = g_tile[(ty * ROWS + r) * G_STRIDE + d4];
      }
      for (var t = 0u; t < 4u; t++) {
        let values = vt_tile[(d4 * 4u + t) * KEY_STRIDE + tx];
        for (var r = 0u; r < ROWS; r++) {
          dp[r] += g4[r][t] * values;
        }
      }
    }
    // dS · scale (0 where masked) into workgroup memory.
    let key_first = key0 + 4u * tx;
    for (var r = 0u; r < ROWS; r++) {
#if DROPOUT
      let words = attention_dropout_words(dropout_stream(), batch_head, first_row + r, key_first >> 2u);
#endif
      var ds = vec4<f32>(0.0);
      for (var t = 0u; t < 4u; t++) {
        let j = key_first + t;
        if (i32(j) >= lo[r] && i32(j) <= hi[r]) {
          let capped = capped_score(s[r][t]);
          let score = masked_score(capped.x, b, h, first_row + r, j);
          if (score > negative_infinity) {
            let p = exp((score - lse[r]) - lse_residual[r]);
#if DROPOUT
            let keep = dropout_factor(words[t]);
#else
            let keep = 1.0;
#endif
            ds[t] = p * (dp[r][t] * keep - row_delta[r]) * capped.y * params.scale;
          }
        }
      }
      ds_tile[(ty * ROWS + r) * KEY_STRIDE + tx] = ds;
    }
    workgroupBarrier();

    // dQ += dS K for this thread's rows × dims tx + KEY_THREADS · m.
    for (var c4 = 0u; c4 < KEY_THREADS; c4++) {
      var ds4: array<vec4<f32>, ROWS>;
      for (var r = 0u; r < ROWS; r++) {
        ds4[r] = ds_tile[(ty * ROWS + r) * KEY_STRIDE + c4];
      }
      for (var m = 0u; m < DQ_DIMS; m++) {
        let keys = kt_tile[(tx + m * KEY_THREADS) * KEY_STRIDE + c4];
        for (var r = 0u; r < ROWS; r++) {
          dq_acc[r * DQ_DIMS + m] += dot(ds4[r], keys);
        }
      }
    }
    tile = following;
  }

  for (var r = 0u; r < ROWS; r++) {
    let i = first_row + r;
    if (i < row_limit) {
      let dq_address = params.dq_offset + b * params.dq_batch + h * params.dq_head + (sequence.q_start + i) * params.dq_seq;
      for (var m = 0u; m < DQ_DIMS; m++) {
        let d = tx + m * KEY_THREADS;
        if (d < dqk) {
          dq[dq_address + d * params.dq_dim] = select(${GRADIENT_T}(dq_acc[r * DQ_DIMS + m]), ${GRADIENT_NAN}, poisoned[r]);
        }
      }
    }
  }
}

// This thread's share of tile `tile`'s k and v rows (zero past the sequence's keys; k's NaN values as 0).
fn fetch_tile(tile: u32, lid: u32, k_base: u32, v_base: u32, sequence: Sequence, k_next: ptr<function, array<vec4<f32>, K_LOADS>>, v_next: ptr<function, array<vec4<f32>, V_LOADS>>) {
  let key0 = tile * BLOCK_N;
  for (var n = 0u; n < K_LOADS; n++) {
    let e = lid + n * THREADS;
    let j = key0 + e % BLOCK_N;
    var value = vec4<f32>(0.0);
    if (e < BLOCK_N * QK4 && j < sequence.k_valid) {
      value = without_nan4(load_k4(k_base + (sequence.k_start + j) * params.k_seq, (e / BLOCK_N) * 4u, params.head_dim_qk, params.k_dim));
    }
    (*k_next)[n] = value;
  }
  for (var n = 0u; n < V_LOADS; n++) {
    let e = lid + n * THREADS;
    let j = key0 + e % BLOCK_N;
    var value = vec4<f32>(0.0);
    if (e < BLOCK_N * V4 && j < sequence.k_valid) {
      value = load_v4(v_base + (sequence.k_start + j) * params.v_seq, (e / BLOCK_N) * 4u, params.head_dim_v, params.v_dim);
    }
    (*v_next)[n] = value;
  }
}
