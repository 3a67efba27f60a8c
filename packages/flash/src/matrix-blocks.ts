/**
 * The subgroup-matrix work of flash-forward-matrix.wgsl for one shape (row blocks, head dims and keys in blocks of
 * 16), as `${NAME}` replacements. Every load and store offset carries a `salt(site)` (site × a uniform that is
 * always 0) that differs between call sites and, in the key loop, between tiles: the H200's driver treats matrix
 * loads as pure, and merged the load of the q rows with the later load of the probabilities staged in the same
 * scratch at the same offset (every f16 conformance case wrong); an offset it cannot prove equal to another's, and
 * that changes with the tile, rules out merging and hoisting. (A fully unrolled form, every matrix a named
 * variable, was measured too: 10-15% slower on the H200 than these loops.)
 */
export interface MatrixBlockShape {
  /** Blocks of 16 query rows per subgroup. */
  readonly rowBlocks: number;
  /** Head dims (q·k and v) and keys per tile, in blocks of 16. */
  readonly qk16: number;
  readonly v16: number;
  readonly keys16: number;
  /**
   * Key and value matrices straight from the padded k and v copies (padded-key-values.ts: rows of exactly the
   * compiled head dims; k_row and v_row are the tile's first key row) instead of the workgroup tiles.
   */
  readonly direct?: boolean;
}

const LEFT = 'subgroup_matrix_left<f16, 16, 16>';
const RIGHT = 'subgroup_matrix_right<f16, 16, 16>';
const RESULT = 'subgroup_matrix_result<f32, 16, 16>';

/** `body` in a WGSL loop of `variable` over 0 .. count − 1. */
const block = (count: number, variable: string, body: string) => `for (var ${variable} = 0u; ${variable} < ${count}u; ${variable}++) { ${body} }`;

/** `${NAME}` replacements of flash-forward-matrix.wgsl for `shape`. */
export function matrixForwardBlocks(shape: MatrixBlockShape): Record<string, string> {
  const { rowBlocks, qk16, v16, keys16, direct = false } = shape;
  // Loads from the read-only copies may be merged when equal, so they carry no salt.
  const keyMatrix = (site: string) =>
    direct
      ? `subgroupMatrixLoad<${RIGHT}, col_major>(&k, k_row + n * 16u * HEAD_DIM_QK + kk * 16u, HEAD_DIM_QK)`
      : `subgroupMatrixLoad<${RIGHT}, col_major>(&k_tile, k_tile_base + n * 16u * K_STRIDE + kk * 16u + salt(${site}), K_STRIDE)`;
  const valueMatrix = (site: string) =>
    direct
      ? `subgroupMatrixLoad<${RIGHT}, row_major>(&v, v_row + kk * 16u * HEAD_DIM_V + n * 16u, HEAD_DIM_V)`
      : `subgroupMatrixLoad<${RIGHT}, row_major>(&v_tile, v_tile_base + kk * 16u * V_STRIDE + n * 16u + salt(${site}), V_STRIDE)`;
  const outputStore = (site: string) =>
    block(rowBlocks, 'r', block(v16, 'n', `subgroupMatrixStore<row_major>(&score_scratch, s_base + r * 16u * S_STRIDE + n * 16u + salt(${site} + r * ${v16}u + n), o_m[r * ${v16}u + n], S_STRIDE);`));
  return {
    MATRIX_DECLARATIONS: [
      `var q_m: array<${LEFT}, ${rowBlocks * qk16}>;`,
      `var o_m: array<${RESULT}, ${rowBlocks * v16}>;`,
      block(rowBlocks * v16, 'e', `o_m[e] = ${RESULT}();`),
    ].join('\n  '),
    MATRIX_LOAD_QUERY: block(
      rowBlocks,
      'r',
      block(qk16, 'kk', `q_m[r * ${qk16}u + kk] = subgroupMatrixLoad<${LEFT}, row_major>(&probability_scratch, p_base + r * 16u * P_STRIDE + kk * 16u + salt(1u + r * ${qk16}u + kk), P_STRIDE);`),
    ),
    MATRIX_SCORES: block(
      keys16,
      'n',
      block(
        rowBlocks,
        'r',
        `var s = ${RESULT}(); ` +
          block(qk16, 'kk', `let keys = ${keyMatrix(`tile_site + 1u + (n * ${rowBlocks}u + r) * ${qk16}u + kk`)}; s = subgroupMatrixMultiplyAccumulate(q_m[r * ${qk16}u + kk], keys, s);`) +
          ` subgroupMatrixStore<row_major>(&score_scratch, s_base + r * 16u * S_STRIDE + n * 16u + salt(tile_site + 64u + n * ${rowBlocks}u + r), s, S_STRIDE);`,
      ),
    ),
    MATRIX_RESCALE_STORE: outputStore('tile_site + 96u'),
    MATRIX_RESCALE_LOAD: block(rowBlocks, 'r', block(v16, 'n', `o_m[r * ${v16}u + n] = subgroupMatrixLoad<${RESULT}, row_major>(&score_scratch, s_base + r * 16u * S_STRIDE + n * 16u + salt(tile_site + 128u + r * ${v16}u + n), S_STRIDE);`)),
    MATRIX_PRODUCTS: block(
      keys16,
      'kk',
      block(
        rowBlocks,
        'r',
        `let probabilities = subgroupMatrixLoad<${LEFT}, row_major>(&probability_scratch, p_base + r * 16u * P_STRIDE + kk * 16u + salt(tile_site + 160u + kk * ${rowBlocks}u + r), P_STRIDE); ` +
          block(v16, 'n', `let values = ${valueMatrix(`tile_site + 176u + (kk * ${rowBlocks}u + r) * ${v16}u + n`)}; o_m[r * ${v16}u + n] = subgroupMatrixMultiplyAccumulate(probabilities, values, o_m[r * ${v16}u + n]);`),
      ),
    ),
    MATRIX_STORE_OUTPUT: outputStore('64u'),
  };
}

/**
 * `${NAME}` replacements of flash-backward-query-matrix.wgsl (one 16-row block per subgroup) for head dims and keys
 * per tile in blocks of 16. k and v come from the padded copies (rows of exactly the compiled head dims; k_row and
 * v_row: the tile's first key row); S is summed as in the forward (`matrixForwardBlocks`), so P is exact.
 */
export function matrixQueryGradientBlocks(shape: Omit<MatrixBlockShape, 'rowBlocks' | 'direct'>): Record<string, string> {
  const { qk16, v16, keys16 } = shape;
  return {
    MATRIX_DECLARATIONS: [
      `var q_m: array<${LEFT}, ${qk16}>;`,
      `var g_m: array<${LEFT}, ${v16}>;`,
      `var dq_m: array<${RESULT}, ${qk16}>;`,
      block(qk16, 'e', `dq_m[e] = ${RESULT}();`),
    ].join('\n  '),
    MATRIX_LOAD_QUERY: block(qk16, 'kk', `q_m[kk] = subgroupMatrixLoad<${LEFT}, row_major>(&probability_scratch, p_base + kk * 16u + salt(block_site + 1u + kk), P_STRIDE);`),
    MATRIX_LOAD_GRAD: block(v16, 'kk', `g_m[kk] = subgroupMatrixLoad<${LEFT}, row_major>(&probability_scratch, p_base + kk * 16u + salt(block_site + 16u + kk), P_STRIDE);`),
    MATRIX_SCORES: block(
      keys16,
      'n',
      `var s = ${RESULT}(); ` +
        block(qk16, 'kk', `let keys = subgroupMatrixLoad<${RIGHT}, col_major>(&k, k_row + n * 16u * HEAD_DIM_QK + kk * 16u, HEAD_DIM_QK); s = subgroupMatrixMultiplyAccumulate(q_m[kk], keys, s);`) +
        ` subgroupMatrixStore<row_major>(&score_scratch, s_base + n * 16u + salt(tile_site + 64u + n), s, S_STRIDE);`,
    ),
    MATRIX_VALUE_PRODUCTS: block(
      keys16,
      'n',
      `var products = ${RESULT}(); ` +
        block(v16, 'kk', `let values = subgroupMatrixLoad<${RIGHT}, col_major>(&v, v_row + n * 16u * HEAD_DIM_V + kk * 16u, HEAD_DIM_V); products = subgroupMatrixMultiplyAccumulate(g_m[kk], values, products);`) +
        ` subgroupMatrixStore<row_major>(&dp_scratch, dp_base + n * 16u + salt(tile_site + 96u + n), products, DP_STRIDE);`,
    ),
    MATRIX_QUERY_GRADIENT: block(
      keys16,
      'kk',
      `let gradients = subgroupMatrixLoad<${LEFT}, row_major>(&probability_scratch, p_base + kk * 16u + salt(tile_site + 160u + kk), P_STRIDE); ` +
        block(qk16, 'n', `let keys = subgroupMatrixLoad<${RIGHT}, row_major>(&k, k_row + kk * 16u * HEAD_DIM_QK + n * 16u, HEAD_DIM_QK); dq_m[n] = subgroupMatrixMultiplyAccumulate(gradients, keys, dq_m[n]);`),
    ),
    MATRIX_STORE_GRADIENT: block(qk16, 'n', `subgroupMatrixStore<row_major>(&score_scratch, s_base + n * 16u + salt(block_site + 32u + n), dq_m[n], S_STRIDE);`),
  };
}

/**
 * `${NAME}` replacements of flash-backward-key-value-matrix.wgsl (16 keys per subgroup; rows16 blocks of 16 query
 * rows per tile) for head dims in blocks of 16. q, k, v and dO come from padded copies (rows of exactly the compiled
 * head dims; k_row / v_row: the subgroup's first key, q_row / g_row: the tile's first query row).
 */
export function matrixKeyValueGradientBlocks(shape: { readonly qk16: number; readonly v16: number; readonly rows16: number }): Record<string, string> {
  const { qk16, v16, rows16 } = shape;
  const store = (matrices: string, count: number, site: number) =>
    block(count, 'n', `subgroupMatrixStore<row_major>(&score_scratch, s_base + n * 16u + salt(${site}u + n), ${matrices}[n], S_STRIDE);`);
  return {
    MATRIX_DECLARATIONS: [
      `var k_m: array<${LEFT}, ${qk16}>;`,
      `var v_m: array<${LEFT}, ${v16}>;`,
      `var dk_m: array<${RESULT}, ${qk16}>;`,
      `var dv_m: array<${RESULT}, ${v16}>;`,
      block(qk16, 'kk', `k_m[kk] = subgroupMatrixLoad<${LEFT}, row_major>(&k, k_row + kk * 16u, HEAD_DIM_QK); dk_m[kk] = ${RESULT}();`),
      block(v16, 'kk', `v_m[kk] = subgroupMatrixLoad<${LEFT}, row_major>(&v, v_row + kk * 16u, HEAD_DIM_V); dv_m[kk] = ${RESULT}();`),
    ].join('\n  '),
    MATRIX_SCORES: block(
      rows16,
      'm',
      `var s = ${RESULT}(); ` +
        block(qk16, 'kk', `let queries = subgroupMatrixLoad<${RIGHT}, col_major>(&q, q_row + m * 16u * HEAD_DIM_QK + kk * 16u, HEAD_DIM_QK); s = subgroupMatrixMultiplyAccumulate(k_m[kk], queries, s);`) +
        ` subgroupMatrixStore<row_major>(&score_scratch, s_base + m * 16u + salt(tile_site + 1u + m), s, S_STRIDE); ` +
        `var products = ${RESULT}(); ` +
        block(v16, 'kk', `let gradients = subgroupMatrixLoad<${RIGHT}, col_major>(&grad_out, g_row + m * 16u * HEAD_DIM_V + kk * 16u, HEAD_DIM_V); products = subgroupMatrixMultiplyAccumulate(v_m[kk], gradients, products);`) +
        ` subgroupMatrixStore<row_major>(&dp_scratch, dp_base + m * 16u + salt(tile_site + 16u + m), products, DP_STRIDE);`,
    ),
    MATRIX_GRADIENTS: block(
      rows16,
      'm',
      `let weights = subgroupMatrixLoad<${LEFT}, row_major>(&weight_scratch, p_base + m * 16u + salt(tile_site + 32u + m), P_STRIDE); ` +
        block(v16, 'n', `let gradients = subgroupMatrixLoad<${RIGHT}, row_major>(&grad_out, g_row + m * 16u * HEAD_DIM_V + n * 16u, HEAD_DIM_V); dv_m[n] = subgroupMatrixMultiplyAccumulate(weights, gradients, dv_m[n]);`) +
        ` let score_gradients = subgroupMatrixLoad<${LEFT}, row_major>(&gradient_scratch, p_base + m * 16u + salt(tile_site + 48u + m), P_STRIDE); ` +
        block(qk16, 'n', `let queries = subgroupMatrixLoad<${RIGHT}, row_major>(&q, q_row + m * 16u * HEAD_DIM_QK + n * 16u, HEAD_DIM_QK); dk_m[n] = subgroupMatrixMultiplyAccumulate(score_gradients, queries, dk_m[n]);`),
    ),
    MATRIX_STORE_KEY_GRADIENT: store('dk_m', qk16, 8),
    MATRIX_STORE_VALUE_GRADIENT: store('dv_m', v16, 24),
  };
}

/**
 * `${NAME}` replacements of flash-backward-query-matrix-stored.wgsl (one 16-row block per subgroup) for q·k head
 * dims in blocks of 16: dS straight from the stored scores (ds_row: the subgroup's first row; key0: the tile's first
 * key), k from the padded copy (k_row: the tile's first key row).
 */
export function matrixStoredQueryBlocks(qk16: number): Record<string, string> {
  return {
    MATRIX_DECLARATIONS: [`var dq_m: array<${RESULT}, ${qk16}>;`, block(qk16, 'e', `dq_m[e] = ${RESULT}();`)].join('\n  '),
    MATRIX_QUERY_GRADIENT:
      `let gradients = subgroupMatrixLoad<${LEFT}, row_major>(&stored_scores, ds_row + key0, params.ds_keys); ` +
      block(qk16, 'n', `let keys = subgroupMatrixLoad<${RIGHT}, row_major>(&k, k_row + n * 16u, HEAD_DIM_QK); dq_m[n] = subgroupMatrixMultiplyAccumulate(gradients, keys, dq_m[n]);`),
    MATRIX_STORE_GRADIENT: block(qk16, 'n', `subgroupMatrixStore<row_major>(&score_scratch, s_base + n * 16u, dq_m[n], S_STRIDE);`),
  };
}
