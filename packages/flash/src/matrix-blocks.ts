/**
 * The subgroup-matrix work of flash-forward-matrix.wgsl, written out for one shape: every matrix is a named
 * variable and every product an explicit statement (arrays of subgroup matrices indexed in loops are left to the
 * driver's unrolling otherwise). Every load and store offset carries a distinct `salt(site)` (site × a uniform
 * that is always 0): a driver was seen to treat matrix loads as pure, merging two loads of the same offset (the q
 * rows and, later, the probabilities staged in one scratch) and hoisting loads out of the key loop; an offset it
 * cannot prove equal to another's, and that changes with the tile, rules both out.
 */
export interface MatrixBlockShape {
  /** Blocks of 16 query rows per subgroup. */
  readonly rowBlocks: number;
  /** Head dims (q·k and v) and keys per tile, in blocks of 16. */
  readonly qk16: number;
  readonly v16: number;
  readonly keys16: number;
}

const LEFT = 'subgroup_matrix_left<f16, 16, 16>';
const RIGHT = 'subgroup_matrix_right<f16, 16, 16>';
const RESULT = 'subgroup_matrix_result<f32, 16, 16>';

/**
 * `${NAME}` replacements of flash-forward-matrix.wgsl for `shape`: 'unrolled' names every matrix and statement;
 * 'loops' keeps the matrices in arrays and the products in loops (what the emulated builtins compile in reasonable
 * time on lavapipe, where every emulated call is inlined with its 1 KiB matrices).
 */
export function matrixForwardBlocks(shape: MatrixBlockShape, form: 'unrolled' | 'loops' = 'unrolled'): Record<string, string> {
  if (form === 'loops') return matrixForwardLoops(shape);
  const { rowBlocks, qk16, v16, keys16 } = shape;
  const each = <T>(count: number, body: (index: number) => T): T[] => Array.from({ length: count }, (_, index) => body(index));
  const rows = each(rowBlocks, (r) => r);
  let site = 0;
  // In the key loop, sites are offset by the tile (`tile_site`); before and after it they are constants.
  const salt = (inLoop: boolean) => (inLoop ? `salt(tile_site + ${++site}u)` : `salt(${++site}u)`);
  const outputStores = (inLoop: boolean) =>
    rows.flatMap((r) =>
      each(v16, (n) => `subgroupMatrixStore<row_major>(&score_scratch, s_base + ${r * 16}u * S_STRIDE + ${n * 16}u + ${salt(inLoop)}, o_${r}_${n}, S_STRIDE);`),
    );
  const declarations = [
    ...rows.flatMap((r) => each(qk16, (kk) => `var q_${r}_${kk}: ${LEFT};`)),
    ...rows.flatMap((r) => each(v16, (n) => `var o_${r}_${n} = ${RESULT}();`)),
  ];
  const loadQuery = rows.flatMap((r) =>
    each(
      qk16,
      (kk) =>
        `q_${r}_${kk} = subgroupMatrixLoad<${LEFT}, row_major>(&probability_scratch, p_base + ${r * 16}u * P_STRIDE + ${kk * 16}u + ${salt(false)}, P_STRIDE);`,
    ),
  );
  // S = Q Kᵀ: a right matrix is 16 head dims × 16 keys, column-major in the row-major key tile; each key block's
  // matrices are loaded once for all row blocks.
  const scores = each(keys16, (n) => [
    ...each(
      qk16,
      (kk) =>
        `let k_${n}_${kk} = subgroupMatrixLoad<${RIGHT}, col_major>(&k_tile, ${n * 16}u * K_STRIDE + ${kk * 16}u + ${salt(true)}, K_STRIDE);`,
    ),
    ...rows.flatMap((r) => [
      `var s_${r}_${n} = ${RESULT}();`,
      ...each(qk16, (kk) => `s_${r}_${n} = subgroupMatrixMultiplyAccumulate(q_${r}_${kk}, k_${n}_${kk}, s_${r}_${n});`),
      `subgroupMatrixStore<row_major>(&score_scratch, s_base + ${r * 16}u * S_STRIDE + ${n * 16}u + ${salt(true)}, s_${r}_${n}, S_STRIDE);`,
    ]),
  ]).flat();
  const rescaleLoad = rows.flatMap((r) =>
    each(
      v16,
      (n) =>
        `o_${r}_${n} = subgroupMatrixLoad<${RESULT}, row_major>(&score_scratch, s_base + ${r * 16}u * S_STRIDE + ${n * 16}u + ${salt(true)}, S_STRIDE);`,
    ),
  );
  // O += P V: P is 16 rows × 16 keys per left matrix, V 16 keys × 16 head dims (row-major).
  const products = each(keys16, (kk) => [
    ...each(
      v16,
      (n) => `let v_${kk}_${n} = subgroupMatrixLoad<${RIGHT}, row_major>(&v_tile, ${kk * 16}u * V_STRIDE + ${n * 16}u + ${salt(true)}, V_STRIDE);`,
    ),
    ...rows.flatMap((r) => [
      `let p_${r}_${kk} = subgroupMatrixLoad<${LEFT}, row_major>(&probability_scratch, p_base + ${r * 16}u * P_STRIDE + ${kk * 16}u + ${salt(true)}, P_STRIDE);`,
      ...each(v16, (n) => `o_${r}_${n} = subgroupMatrixMultiplyAccumulate(p_${r}_${kk}, v_${kk}_${n}, o_${r}_${n});`),
    ]),
  ]).flat();
  const rescaleStore = outputStores(true);
  const finalStore = outputStores(false);
  const lines = (statements: readonly string[]) => statements.join('\n  ');
  if (site >= 256) throw new Error(`flash: the matrix forward's ${site} salt sites exceed the 256 per tile`);
  return {
    MATRIX_DECLARATIONS: lines(declarations),
    MATRIX_LOAD_QUERY: lines(loadQuery),
    MATRIX_SCORES: lines(scores),
    MATRIX_RESCALE_STORE: lines(rescaleStore),
    MATRIX_RESCALE_LOAD: lines(rescaleLoad),
    MATRIX_PRODUCTS: lines(products),
    MATRIX_STORE_OUTPUT: lines(finalStore),
  };
}

function matrixForwardLoops(shape: MatrixBlockShape): Record<string, string> {
  const { rowBlocks, qk16, v16, keys16 } = shape;
  const block = (count: number, variable: string, body: string) => `for (var ${variable} = 0u; ${variable} < ${count}u; ${variable}++) { ${body} }`;
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
          block(qk16, 'kk', `let keys = subgroupMatrixLoad<${RIGHT}, col_major>(&k_tile, n * 16u * K_STRIDE + kk * 16u + salt(tile_site + 1u + (n * ${rowBlocks}u + r) * ${qk16}u + kk), K_STRIDE); s = subgroupMatrixMultiplyAccumulate(q_m[r * ${qk16}u + kk], keys, s);`) +
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
          block(v16, 'n', `let values = subgroupMatrixLoad<${RIGHT}, row_major>(&v_tile, kk * 16u * V_STRIDE + n * 16u + salt(tile_site + 176u + (kk * ${rowBlocks}u + r) * ${v16}u + n), V_STRIDE); o_m[r * ${v16}u + n] = subgroupMatrixMultiplyAccumulate(probabilities, values, o_m[r * ${v16}u + n]);`),
      ),
    ),
    MATRIX_STORE_OUTPUT: outputStore('64u'),
  };
}
