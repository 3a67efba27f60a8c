// FlashAttention backward, dQ from stored score gradients: dQ = dS K, one plain matrix product per (batch, query
// head). The tiled dK/dV kernel compiled with STORE_SCORES (flash-backward-key-value-tiled.wgsl) has written dS · scale
// of every (row, key) pair it visited into `stored_scores`: every pair of each key tile that some row of this
// kernel's row block may attend, masked ones as 0 (or the scratch was zeroed first: stored-scores.ts). This kernel
// therefore neither recomputes S and dP (two of the recompute kernel's three products,
// flash-backward-query-tiled.wgsl) nor reads q, v, dO, delta or any mask.
//
// Layout: flash-common.wgsl's stored_score_slot and stored_score_quad (blocks of the dK/dV kernel's keys × rows).
// One workgroup per BLOCK_ROWS = 4 · ROW_QUADS query rows of one (batch, head); thread (rq, tx) owns the rows
// 4·rq .. 4·rq + 3 × the head dims of vec4 columns tx + DIM_THREADS · m. Per key tile of BLOCK_N keys, dS (as stored)
// and k are staged in workgroup memory (the next tile's read into registers while this one is computed). k's NaN
// values count as 0: a row that may attend a NaN key has a NaN logsumexp and gets a NaN dQ, as in the recompute
// kernel, and the zero dS of a masked pair cannot spread them. Keys are summed in ascending order: deterministic.

const DIM_THREADS: u32 = ${DIM_THREADS}u;
const ROW_QUADS: u32 = ${ROW_QUADS}u;
const THREADS: u32 = DIM_THREADS * ROW_QUADS;
const BLOCK_ROWS: u32 = 4u * ROW_QUADS;
const BLOCK_N: u32 = ${BLOCK_N}u;
const HEAD_DIM_QK: u32 = ${HEAD_DIM_QK}u;
const QK4: u32 = HEAD_DIM_QK / 4u;
// vec4 columns of dQ per thread.
const DQ4: u32 = QK4 / DIM_THREADS;
// Stored-score and key vec4s each thread reads per key tile.
const S_LOADS: u32 = (BLOCK_N * ROW_QUADS + THREADS - 1u) / THREADS;
const K_LOADS: u32 = (BLOCK_N * QK4 + THREADS - 1u) / THREADS;

// Row buffers as array<f32 or f16>, or as array<vec4<f32>> where their rows allow (vec4-loaders.ts).
@group(0) @binding(6) var<storage, read> k: array<${K_ELEMENT}>;
@group(0) @binding(9) var<storage, read> logsumexp: array<f32>;
@group(0) @binding(11) var<storage, read_write> dq: array<${T}>;
@group(0) @binding(13) var<storage, read> stored_scores: array<vec4<f32>>;

// s_tile[c · ROW_QUADS + rq] = dS · scale of key c for rows 4·rq .. 4·rq + 3 (as stored).
var<workgroup> s_tile: array<vec4<f32>, BLOCK_N * ROW_QUADS>;
// k_tile[c · QK4 + d4] = head dims 4·d4 .. 4·d4 + 3 of key c.
var<workgroup> k_tile: array<vec4<f32>, BLOCK_N * QK4>;
var<workgroup> sequence_shared: Sequence;

// load_k4 (vec4-loaders.ts): elements d..d+3 of a row, zero at and past `dim`.
${VEC4_LOADERS}
@compute @workgroup_size(THREADS)
fn main(
  @builtin(local_invocation_index) lid: u32,
  @builtin(workgroup_id) grid_id: vec3<u32>,
  @builtin(num_workgroups) groups: vec3<u32>,
) {
  // Under a banded mask the heaviest row blocks first (flash-common.wgsl); otherwise the plain order, x fastest.
  let wid = select(grid_id, plane_chunked_workgroup(grid_id, groups, later_rows_heavier()), banded());
  let tx = lid % DIM_THREADS;
  let rq = lid / DIM_THREADS;
  // Global indices: the piece's dispatch covers batch entries and heads from its bases, all rows and keys.
  let b = params.batch_base + wid.z;
  let h = params.head_base + wid.y;
  let kv_head = h / (params.q_heads / params.kv_heads);
  let row0 = params.row_base + wid.x * BLOCK_ROWS;
  if (lid == 0u) {
    sequence_shared = load_sequence(b);
  }
  let sequence = workgroupUniformLoad(&sequence_shared);
  if (row0 >= sequence.q_len) {
    return;
  }
  let row_limit = min(sequence.q_len, params.row_end);
  let row_last = min(row0 + BLOCK_ROWS, row_limit) - 1u;
  // The key tiles some row of this workgroup may attend (the others hold only zeros).
  let attended = attended_key_tiles(row0, row_last, sequence, BLOCK_N);
  let tile_end = attended.y;
  let slot = stored_score_slot(b, h);
  let k_base = params.k_offset + b * params.k_batch + kv_head * params.k_head;

  var acc: array<vec4<f32>, 4u * DQ4>;
  for (var e = 0u; e < 4u * DQ4; e++) {
    acc[e] = vec4<f32>(0.0);
  }
  var s_next: array<vec4<f32>, S_LOADS>;
  var k_next: array<vec4<f32>, K_LOADS>;
  var tile = attended.x;
  if (tile < tile_end) {
    fetch_tile(tile, lid, slot, row0, k_base, sequence, &s_next, &k_next);
  }
  while (tile < tile_end) {
    workgroupBarrier();
    for (var n = 0u; n < S_LOADS; n++) {
      let e = lid + n * THREADS;
      if (e < BLOCK_N * ROW_QUADS) {
        s_tile[e] = s_next[n];
      }
    }
    for (var n = 0u; n < K_LOADS; n++) {
      let e = lid + n * THREADS;
      if (e < BLOCK_N * QK4) {
        k_tile[e] = k_next[n];
      }
    }
    workgroupBarrier();
    if (tile + 1u < tile_end) {
      fetch_tile(tile + 1u, lid, slot, row0, k_base, sequence, &s_next, &k_next);
    }
    // dQ += dS K for this thread's rows × vec4 columns tx + DIM_THREADS · m.
    for (var c = 0u; c < BLOCK_N; c++) {
      let s4 = s_tile[c * ROW_QUADS + rq];
      for (var m = 0u; m < DQ4; m++) {
        let k4 = k_tile[c * QK4 + tx + m * DIM_THREADS];
        for (var u = 0u; u < 4u; u++) {
          acc[u * DQ4 + m] += s4[u] * k4;
        }
      }
    }
    tile += 1u;
  }

  for (var u = 0u; u < 4u; u++) {
    let i = row0 + 4u * rq + u;
    if (i < row_limit) {
      // A NaN logsumexp (the forward found a NaN this row may attend) makes the row's dQ NaN.
      let poisoned = is_nan(logsumexp[(b * params.q_heads + h) * params.query_length + i - params.lse_base]);
      let dq_address = params.dq_offset + b * params.dq_batch + h * params.dq_head + (sequence.q_start + i) * params.dq_seq;
      for (var m = 0u; m < DQ4; m++) {
        let d0 = (tx + m * DIM_THREADS) * 4u;
        for (var t = 0u; t < 4u; t++) {
          if (d0 + t < params.head_dim_qk) {
            dq[dq_address + (d0 + t) * params.dq_dim] = select(${T}(acc[u * DQ4 + m][t]), nan_stored(), poisoned);
          }
        }
      }
    }
  }
}

// This thread's share of tile `tile`'s stored scores (all inside the slot: its sizes are padded to whole tiles) and
// k rows (zero past the sequence's valid keys; NaN values as 0).
fn fetch_tile(tile: u32, lid: u32, slot: u32, row0: u32, k_base: u32, sequence: Sequence, s_next: ptr<function, array<vec4<f32>, S_LOADS>>, k_next: ptr<function, array<vec4<f32>, K_LOADS>>) {
  let key0 = tile * BLOCK_N;
  for (var n = 0u; n < S_LOADS; n++) {
    let e = lid + n * THREADS;
    var value = vec4<f32>(0.0);
    if (e < BLOCK_N * ROW_QUADS) {
      value = stored_scores[stored_score_quad(slot, key0 + e / ROW_QUADS, row0 + 4u * (e % ROW_QUADS))];
    }
    (*s_next)[n] = value;
  }
  for (var n = 0u; n < K_LOADS; n++) {
    let e = lid + n * THREADS;
    let j = key0 + e / QK4;
    var value = vec4<f32>(0.0);
    if (e < BLOCK_N * QK4 && j < sequence.k_valid) {
      value = without_nan4(load_k4(k_base + (sequence.k_start + j) * params.k_seq, (e % QK4) * 4u, params.head_dim_qk, params.k_dim));
    }
    (*k_next)[n] = value;
  }
}
