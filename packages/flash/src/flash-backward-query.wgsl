// FlashAttention-2 backward for dQ: one workgroup per tile of THREADS · ROWS query rows of one (batch, head), each
// thread owning ROWS consecutive rows like the forward (no atomics: deterministic). Loops over the key tiles the rows may attend, recomputes
// P = exp(score − logsumexp), regenerates the dropout bits and accumulates dQ += dS K · scale with
// dS = P ∘ (dP̃ − delta). A row whose logsumexp is NaN (the forward found a NaN it may attend) gets a NaN dQ;
// NaN keys are kept out of the K tile (every row that may attend them is such a row), so that the zero dS of a
// masked pair cannot spread them.
//
// When the keys do not fit a storage binding, the recording splits them (binding-chunks.ts): each dispatch covers
// the key tiles of [key_base, key_end) (multiples of BLOCK_N), in the unsplit order. This source is then compiled
// with ${GRADIENT_T} = f32: dq is f32 scratch holding the running sums, loaded at the start when
// params.dq_partial is 1 (so the sums continue exactly), and flash-backward-query-finish.wgsl writes them out.

override THREADS: u32 = 64u;
override BLOCK_N: u32 = 16u;
const ROWS: u32 = ${ROWS}u;
const HEAD_DIM_QK: u32 = ${HEAD_DIM_QK}u;
const HEAD_DIM_V: u32 = ${HEAD_DIM_V}u;
const QK4: u32 = HEAD_DIM_QK / 4u;
const V4: u32 = HEAD_DIM_V / 4u;

// Row buffers as array<f32 or f16>, or as array<vec4<f32>> where their rows allow (vec4-loaders.ts).
@group(0) @binding(5) var<storage, read> q: array<${Q_ELEMENT}>;
@group(0) @binding(6) var<storage, read> k: array<${K_ELEMENT}>;
@group(0) @binding(7) var<storage, read> v: array<${V_ELEMENT}>;
@group(0) @binding(8) var<storage, read> grad_out: array<${GRAD_OUT_ELEMENT}>;
@group(0) @binding(9) var<storage, read> logsumexp: array<f32>;
@group(0) @binding(10) var<storage, read> delta: array<f32>;
@group(0) @binding(11) var<storage, read_write> dq: array<${GRADIENT_T}>;

var<workgroup> k_tile: array<vec4<f32>, BLOCK_N * QK4>;
var<workgroup> v_tile: array<vec4<f32>, BLOCK_N * V4>;
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
  let row_last = min(row0 + THREADS * ROWS, row_limit) - 1u;
  // The key tiles some row of this workgroup may attend.
  let attended = attended_key_tiles(row0, row_last, sequence, BLOCK_N);
  var tile_begin = attended.x;
  var tile_end = attended.y;
  // This dispatch's keys (all of them unless split; the split points are multiples of BLOCK_N).
  tile_begin = max(tile_begin, params.key_base / BLOCK_N);
  tile_end = min(tile_end, (params.key_end + BLOCK_N - 1u) / BLOCK_N);

  let batch_head = b * params.q_heads + h;
  // This thread's rows (inactive rows and rows without any allowed key: empty bounds).
  var q_rows: array<vec4<f32>, ROWS * QK4>;
  var do_rows: array<vec4<f32>, ROWS * V4>;
  var dq_acc: array<vec4<f32>, ROWS * QK4>;
  var lo: array<i32, ROWS>;
  var hi: array<i32, ROWS>;
  var lse: array<f32, ROWS>;
  var lse_residual: array<f32, ROWS>;
  var row_delta: array<f32, ROWS>;
  var poisoned: array<bool, ROWS>;
  var thread_hi = -1;
  for (var r = 0u; r < ROWS; r++) {
    let i = first_row + r;
    lo[r] = 1;
    hi[r] = 0;
    lse[r] = negative_infinity;
    lse_residual[r] = 0.0;
    row_delta[r] = 0.0;
    poisoned[r] = false;
    for (var d4 = 0u; d4 < QK4; d4++) {
      dq_acc[r * QK4 + d4] = vec4<f32>(0.0);
      q_rows[r * QK4 + d4] = vec4<f32>(0.0);
    }
    for (var d4 = 0u; d4 < V4; d4++) {
      do_rows[r * V4 + d4] = vec4<f32>(0.0);
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
        thread_hi = max(thread_hi, bounds.y);
      }
      let q_address = params.q_offset + b * params.q_batch + h * params.q_head + (sequence.q_start + i) * params.q_seq;
      let g_address = params.g_offset + b * params.g_batch + h * params.g_head + (sequence.q_start + i) * params.g_seq;
      for (var d4 = 0u; d4 < QK4; d4++) {
        q_rows[r * QK4 + d4] = load_q4(q_address, d4 * 4u, dqk, params.q_dim);
      }
      for (var d4 = 0u; d4 < V4; d4++) {
        do_rows[r * V4 + d4] = load_grad_out4(g_address, d4 * 4u, dvd, params.g_dim);
      }
      if (params.dq_partial == 1u) {
        // Continue the sums of the previous key chunks (f32 scratch, see the header).
        let dq_address = params.dq_offset + b * params.dq_batch + h * params.dq_head + (sequence.q_start + i) * params.dq_seq;
        for (var d = 0u; d < dqk; d++) {
          dq_acc[r * QK4 + d / 4u][d % 4u] = f32(dq[dq_address + d * params.dq_dim]);
        }
      }
    }
  }
  let k_base = params.k_offset + b * params.k_batch + kv_head * params.k_head;
  let v_base = params.v_offset + b * params.v_batch + kv_head * params.v_head;

  let skips = mark_live_key_tiles(b, h, tile_begin * BLOCK_N, max(tile_end, tile_begin) - tile_begin, BLOCK_N, lid, THREADS);
  for (var tile = tile_begin; tile < tile_end; tile++) {
    if (skips && !key_tile_live(tile - tile_begin)) {
      continue;
    }
    let key0 = tile * BLOCK_N;
    workgroupBarrier();
    for (var e = lid; e < BLOCK_N * QK4; e += THREADS) {
      let j = key0 + e / QK4;
      var value = vec4<f32>(0.0);
      if (j < sequence.k_valid) {
        value = without_nan4(load_k4(k_base + (sequence.k_start + j) * params.k_seq, (e % QK4) * 4u, dqk, params.k_dim));
      }
      k_tile[e] = value;
    }
    for (var e = lid; e < BLOCK_N * V4; e += THREADS) {
      let j = key0 + e / V4;
      var value = vec4<f32>(0.0);
      if (j < sequence.k_valid) {
        value = load_v4(v_base + (sequence.k_start + j) * params.v_seq, (e % V4) * 4u, dvd, params.v_dim);
      }
      v_tile[e] = value;
    }
    workgroupBarrier();
    // Keys of this tile some row of this thread may attend.
    let keys = u32(clamp(thread_hi - i32(key0) + 1, 0, i32(BLOCK_N)));
#if DROPOUT
    var words: array<vec4<u32>, ROWS>;
#endif
    for (var c = 0u; c < keys; c++) {
      let j = key0 + c;
#if DROPOUT
      if ((c & 3u) == 0u) {
        for (var r = 0u; r < ROWS; r++) {
          words[r] = attention_dropout_words(dropout_stream(), batch_head, first_row + r, j >> 2u);
        }
      }
#endif
      // The same summation order as the forward's (identical scores keep P exact).
      var dots: array<f32, ROWS>;
      var dps: array<f32, ROWS>;
      for (var r = 0u; r < ROWS; r++) {
        dots[r] = 0.0;
        dps[r] = 0.0;
      }
      for (var d4 = 0u; d4 < QK4; d4++) {
        let key = k_tile[c * QK4 + d4];
        for (var r = 0u; r < ROWS; r++) {
          dots[r] += dot(q_rows[r * QK4 + d4], key);
        }
      }
      for (var d4 = 0u; d4 < V4; d4++) {
        let value = v_tile[c * V4 + d4];
        for (var r = 0u; r < ROWS; r++) {
          dps[r] += dot(do_rows[r * V4 + d4], value);
        }
      }
      var ds: array<f32, ROWS>;
      for (var r = 0u; r < ROWS; r++) {
        ds[r] = 0.0;
        if (i32(j) >= lo[r] && i32(j) <= hi[r]) {
          let capped = capped_score(dots[r]);
          let score = masked_score(capped.x, b, h, first_row + r, j);
          if (score > negative_infinity) {
            let p = exp((score - lse[r]) - lse_residual[r]);
#if DROPOUT
            let keep = dropout_factor(words[r][c & 3u]);
#else
            let keep = 1.0;
#endif
            ds[r] = p * (dps[r] * keep - row_delta[r]) * capped.y * params.scale;
          }
        }
      }
      for (var d4 = 0u; d4 < QK4; d4++) {
        let key = k_tile[c * QK4 + d4];
        for (var r = 0u; r < ROWS; r++) {
          dq_acc[r * QK4 + d4] += ds[r] * key;
        }
      }
    }
  }

  for (var r = 0u; r < ROWS; r++) {
    let i = first_row + r;
    if (i < row_limit) {
      let dq_address = params.dq_offset + b * params.dq_batch + h * params.dq_head + (sequence.q_start + i) * params.dq_seq;
      for (var d = 0u; d < dqk; d++) {
        dq[dq_address + d * params.dq_dim] = select(${GRADIENT_T}(dq_acc[r * QK4 + d / 4u][d % 4u]), ${GRADIENT_NAN}, poisoned[r]);
      }
    }
  }
}
