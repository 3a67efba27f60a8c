import { InvalidArgumentError, type AttentionLayout, type AttentionProblem, type KernelSource } from '@webattn/tensor';
import { largest, rowGroups, shiftedOffset, type Chunk } from './binding-chunks';
import { checkFlash, layoutSpan } from './check-flash';
import {
  assertBufferHolds,
  assertProblemBuffers,
  assertRunnable,
  recordingCaps,
  wholeOptionalBindings,
  type FlashForwardBuffers,
  type FlashRecordOptions,
  type FlashRecording,
} from './flash-forward';
import { BINDING, flashKernel, variantOf } from './flash-kernels';
import {
  assertWholeBuffersFit,
  backwardBindings,
  chunkArguments,
  dispatchChunks,
  finishChunk,
  keyValuePartialBindings,
  overflowMessage,
  planKeyValue,
  queryPartialBindings,
  queryScratch,
  requireChunks,
  type KernelBindings,
  type PackedRows,
} from './flash-chunks';
import { tileLoads, recordingTiles, type FlashCaps, type FlashTiles, type MatrixBackwardShapes, type MatrixKeyValueShape, type MatrixQueryShape, type TiledShape } from './flash-tiles';
import { matrixQueryKernel, matrixQueryShape } from './flash-backward-query-matrix';
import { matrixKeyValueKernel, matrixKeyValueShape, preferredMatrixKeyValueShape } from './flash-backward-key-value-matrix';
import { rowsOfEights } from './chunked-rows';
import { vec4RowTensors, type Vec4Rows } from './vec4-loaders';
import { directKeyValuesAllowed, recordPaddedCopy, recordPaddedKeyValues, varlenOffsets, type KeyValueCopies } from './padded-key-values';
import { backwardPrologueUnavailable, recordBackwardPrologue, type PrologueCopies } from './backward-prologue';
import { heaviestKeysFirst, pairedWorkgroups, pairsMirroredBlocks, tiledPairsBlocks } from './balanced-blocks';
import { packFlashUniforms, type ChunkUniforms, type GradientLayouts } from './flash-uniforms';
import { rawRecorder, type BoundBuffer, type KernelRecorder } from './recorder';
import { deltaBinding, logsumexpBinding, type ChunkBinding, type ChunkHeads } from './row-stats';
import deltaSource from './flash-backward-delta.wgsl?raw';
import keyValueSource from './flash-backward-key-value.wgsl?raw';
import querySource from './flash-backward-query.wgsl?raw';
import finishSource from './flash-backward-finish.wgsl?raw';
import queryFinishSource from './flash-backward-query-finish.wgsl?raw';
import tiledKeyValueSource from './flash-backward-key-value-tiled.wgsl?raw';
import tiledQuerySource from './flash-backward-query-tiled.wgsl?raw';
import { STORED_SCORES_BYTES, planStoredScores, storedQueryKernel, storedQueryRows, type StoredScoresPlan } from './stored-scores';
import { matrixStoredQueryKernel, planMatrixStoredScores, type MatrixStoredScoresPlan } from './matrix-stored-scores';

/**
 * A gradient kernel's source: writing its gradients in the problem's dtype, or (partial) running f32 sums in
 * scratch that later dispatches continue and a finish kernel writes out.
 */
function gradientSource(source: string, partial: boolean): string {
  return source.replaceAll('${GRADIENT_T}', partial ? 'f32' : '${T}').replaceAll('${GRADIENT_NAN}', partial ? 'nan_f32()' : 'nan_stored()');
}

/** The dK/dV kernel's source, compact or tiled (see gradientSource). */
export function keyValueSourceFor(partial: boolean, tiled = false): string {
  return gradientSource(tiled ? tiledKeyValueSource : keyValueSource, partial);
}

/** The dQ kernel's source, compact or tiled (see gradientSource). */
export function querySourceFor(partial: boolean, tiled = false): string {
  return gradientSource(tiled ? tiledQuerySource : querySource, partial);
}

/**
 * A gradient kernel and the rows (dQ) or keys (dK/dV) one workgroup covers: the tiled kernel
 * (flash-backward-*-tiled.wgsl) with `shape` when the forward is tiled and it fits (chooseTiles), else the compact
 * one with `compactConstants` (THREADS threads × the compact rows per thread). `paired`: the tiled kernel takes its
 * blocks in mirrored pairs (PAIRED_BLOCKS; the compact kernels never do), so its dispatch runs pairedWorkgroups.
 * `storedRows`: the tiled dK/dV kernel also writes dS for a stored-score dQ of that many rows per workgroup
 * (STORE_SCORES, stored-scores.ts); 0: it does not.
 */
export function gradientKernel(
  name: string,
  sourceFor: (partial: boolean, tiled: boolean) => string,
  partial: boolean,
  variant: ReturnType<typeof variantOf>,
  tiles: FlashTiles,
  shape: TiledShape | null,
  compactConstants: Readonly<Record<string, number>>,
  vec4Rows: Vec4Rows,
  paired = false,
  storedRows = 0,
): { source: KernelSource; perWorkgroup: number; paired: boolean } {
  const suffix = partial ? '-partial' : '';
  if (shape) {
    const sizes = { rows: shape.rowsPerThread, keyThreads: shape.keyThreads };
    // Each thread's share of the tiles (4 · key threads keys for dQ, rows for dK/dV) it reads ahead into registers.
    const [qkLoads, vLoads] = name === 'flash-backward-query' ? ['K_LOADS', 'V_LOADS'] : ['Q_LOADS', 'G_LOADS'];
    const loads = (headDim: number) => tileLoads(4 * shape.keyThreads, headDim, shape.threads);
    const stored: Record<string, number> = storedRows > 0 ? { STORED_ROWS: storedRows } : {};
    const extras = { vec4Rows, sizes: { [qkLoads]: loads(tiles.headDimQk), [vLoads]: loads(tiles.headDimV), ...stored }, flags: { PAIRED_BLOCKS: paired, STORE_SCORES: storedRows > 0 } };
    const source = flashKernel(`${name}-tiled${suffix}`, sourceFor(partial, true), variant, tiles, { THREADS: shape.threads }, sizes, extras);
    return { source, perWorkgroup: (shape.threads / shape.keyThreads) * shape.rowsPerThread, paired };
  }
  const source = flashKernel(`${name}${suffix}`, sourceFor(partial, false), variant, tiles, compactConstants, {}, { vec4Rows });
  return { source, perWorkgroup: compactConstants.THREADS! * tiles.forwardRowsPerThread, paired: false };
}

/**
 * Query rows the dK/dV kernel stages per tile (its BLOCK_M: the tiled kernel's 4 · key threads, the compact
 * kernel's backwardRows). Row chunks at multiples of it give the unsplit bits (BACKWARD_TILE_ROWS is one); smaller
 * ones leave the tile's other rows out (flash-backward-key-value*.wgsl).
 */
export function keyValueQueryTile(tiles: FlashTiles): number {
  return tiles.tiledKeyValue ? 4 * tiles.tiledKeyValue.keyThreads : tiles.backwardRows;
}

/**
 * The matrix dQ and dK/dV shapes a backward with these tiles takes (the device's tuned ones where they fit, else the
 * defaults), where its padded copies fit; null where the backward does not run on subgroup matrices.
 */
export function matrixBackwardShapes(tiles: FlashTiles, caps: FlashCaps): MatrixBackwardShapes | null {
  const query = matrixQueryShape(tiles, caps);
  const keyValue = preferredMatrixKeyValueShape(tiles, caps);
  return query && keyValue ? { query, keyValue } : null;
}

/**
 * Buffers of a flash backward pass: the forward's inputs, out and logsumexp, plus gradOut (read) and dq, dk, dv
 * (written, dtype `problem.dtype`). gradOut, dq, dk and dv use the layouts in `layouts` (default: those of out,
 * q, k and v in `problem.layout`). dk/dv rows of padded keys (≥ keyLengths[b]) are written as 0.
 */
export interface FlashBackwardBuffers extends FlashForwardBuffers {
  readonly gradOut: GPUBuffer;
  readonly dq: GPUBuffer;
  readonly dk: GPUBuffer;
  readonly dv: GPUBuffer;
  readonly layouts?: Partial<GradientLayouts>;
}

export function gradientLayouts(problem: AttentionProblem, layouts: Partial<GradientLayouts> = {}): GradientLayouts {
  return {
    gradOut: layouts.gradOut ?? problem.layout.out,
    dq: layouts.dq ?? problem.layout.q,
    dk: layouts.dk ?? problem.layout.k,
    dv: layouts.dv ?? problem.layout.v,
  };
}

/** What the backward's recording functions share. */
interface BackwardRun {
  readonly recorder: KernelRecorder;
  readonly problem: AttentionProblem;
  readonly gradients: GradientLayouts;
  readonly residual: boolean;
  readonly packing: PackedRows | undefined;
  readonly limit: number;
  readonly tensors: Parameters<typeof chunkArguments>[3];
  readonly optional: readonly (readonly [number, GPUBuffer])[];
  readonly uniforms: (chunk: ChunkUniforms) => ArrayBuffer;
  /** The logsumexp (read) and delta bindings of a kernel dispatched over `chunks` of these heads. */
  readonly rowStats: (heads: ChunkHeads, chunks: readonly Chunk[]) => ChunkBinding[];
}

/**
 * Records the three backward kernels (no checks): delta = rowsum(dO ∘ O) into a temporary [B, Hq, L] f32 buffer
 * (on subgroup matrices with the padded copies the matrix kernels read, in one prologue dispatch where it serves:
 * backward-prologue.ts), then dK/dV over key tiles and dQ over query tiles, both recomputing P from q, k and the
 * logsumexp (no atomics: the same bits on every run) — or, where the score gradients fit the budget, dK/dV storing them and dQ = dS K from them
 * (stored-scores.ts for the tiled kernels, matrix-stored-scores.ts for those on subgroup matrices). Chunked
 * (binding-chunks.ts) when a binding would exceed the limit: over keys too, where dQ and dK/dV continue f32 sums
 * in scratch in the unsplit order, so the results keep their bits (except row chunks that end inside a dK/dV
 * query tile: dK/dV then agree within rounding).
 */
export function recordFlashBackward(
  recorder: KernelRecorder,
  caps: FlashCaps,
  problem: AttentionProblem,
  buffers: FlashBackwardBuffers,
): void {
  const { batch, queryHeads, queryLength, keyLength } = problem;
  if (batch === 0 || queryHeads === 0 || (queryLength === 0 && keyLength === 0)) return;
  const tiles = recordingTiles(recorder.gpu, { ...problem, directKeyValues: directKeyValuesAllowed(problem, caps, buffers) }, caps)!;
  const variant = variantOf(problem);
  const gradients = gradientLayouts(problem, buffers.layouts);
  const residual = buffers.logsumexpResidual ?? false;
  // Split into chunks (batch entries × query heads × rows × keys; kv heads × keys for dK/dV) when a binding would
  // exceed the limit.
  const packing = buffers.packedRows;
  const kernels = backwardBindings(problem, gradients, residual, packing);
  const limit = caps.maxStorageBufferBindingSize;
  const chunks = {
    delta: requireChunks(problem, kernels.delta, limit, 'flash backward'),
    query: requireChunks(problem, kernels.query, limit, 'flash backward'),
  };
  assertWholeBuffersFit([kernels.delta, kernels.query, kernels.keyValue], { ...buffers }, limit, 'flash backward');
  const keyValuePlan = planKeyValue(problem, gradients, residual, limit, packing);
  if ('overflow' in keyValuePlan) {
    throw new InvalidArgumentError(`flash backward cannot run this problem:\n  - ${overflowMessage(keyValuePlan.overflow, limit)}`);
  }
  const delta = recorder.scratch(Math.max(4, batch * queryHeads * queryLength * 4), GPUBufferUsage.STORAGE, 'flash backward delta');
  const run: BackwardRun = {
    recorder,
    problem,
    gradients,
    residual,
    packing,
    limit,
    tensors: { ...buffers },
    optional: wholeOptionalBindings(problem, buffers),
    uniforms: (chunk) => packFlashUniforms(problem, gradients, undefined, residual, chunk),
    rowStats: (heads, kernelChunks) => [
      logsumexpBinding(recorder, problem, heads, { buffer: buffers.logsumexp, residual, limit, binding: BINDING.first + 4, access: 'read', chunks: kernelChunks }),
      deltaBinding(problem, heads, { buffer: delta, limit, binding: BINDING.first + 5 }),
    ],
  };
  const vec4Rows = vec4RowTensors(problem, gradients.gradOut);
  const keyValueMatrix = 'direct' in keyValuePlan && keyValuePlan.direct.every((chunk) => chunk.rows.count === queryLength) ? matrixKeyValueShape(problem, gradients.gradOut, tiles, caps, buffers) : null;
  // The matrix dK/dV's padded copies and delta in one dispatch where the prologue serves (backward-prologue.ts).
  const prologueSources = { ...buffers, gradOutLayout: gradients.gradOut };
  const prologueShape = keyValueMatrix && { queryRows: Math.ceil(queryLength / keyValueMatrix.rows) * keyValueMatrix.rows, headDimQk: tiles.headDimQk, headDimV: tiles.headDimV };
  const prologue =
    prologueShape && queryLength > 0 && keyLength > 0 && chunks.delta.length === 1 && backwardPrologueUnavailable(problem, prologueSources, prologueShape, limit) === null
      ? recordBackwardPrologue(recorder, problem, prologueSources, prologueShape, delta)
      : undefined;
  if (queryLength > 0 && !prologue) {
    dispatchChunks(
      recorder,
      flashKernel('flash-backward-delta', deltaSource, variant, tiles, { BLOCK_M: tiles.rows }, {}, { vec4Rows }),
      problem,
      kernels.delta,
      chunks.delta,
      run.tensors,
      run.optional,
      run.uniforms,
      (chunk) => [Math.ceil(chunk.rows.count / tiles.rows), chunk.heads.count, chunk.batch.count],
      [deltaBinding(problem, 'query', { buffer: delta, limit, binding: BINDING.first + 2 })],
    );
  }
  const keyValueConstants = { BLOCK_M: tiles.backwardRows, THREADS: tiles.backwardKeys };
  // Causal blocks in pairs (balanced-blocks.ts) where the tiled kernels gain from it; never in the partial ones.
  const paired = tiledPairsBlocks(problem, tiles.headDimQk, tiles.headDimV);
  const keyValueKernel = (partial: boolean, storedRows = 0) =>
    gradientKernel('flash-backward-key-value', keyValueSourceFor, partial, variant, tiles, tiles.tiledKeyValue, keyValueConstants, vec4Rows, paired && !partial, storedRows);
  // The matrix kernels' k and v: one padded copy for both (rows padded to 64, the largest tile either takes; k's NaN
  // values as 0, which dQ needs and dK/dV does not mind: a NaN key's rows have a NaN logsumexp either way).
  let padded: KeyValueCopies | undefined;
  const paddedKeyValues = () => (padded ??= prologue?.keyValues ?? recordPaddedKeyValues(recorder, problem, buffers, 64, tiles.headDimQk, tiles.headDimV, { k: 'zero-nan', v: 'plain' }));
  const matrixQuery = matrixQueryShape(tiles, caps);
  // Stored scores: the tiled kernels where neither gradient runs on subgroup matrices, the matrix ones where both do.
  const oneChunk = 'direct' in keyValuePlan && keyValuePlan.direct.length === 1 && chunks.query.length === 1 && queryLength > 0 && keyLength > 0;
  const budget = Math.min(caps.storedScoresBytes ?? STORED_SCORES_BYTES, recorder.gpu.limits.maxBufferSize);
  const stored = keyValueMatrix || matrixQuery || !oneChunk || !tiles.tiledKeyValue ? null : planStoredScores(problem, tiles.headDimQk, tiles.tiledKeyValue, caps, budget);
  if (stored) {
    recordStoredScores(run, stored, keyValueKernel(false, storedQueryRows(stored.shape)), storedQueryKernel(variant, tiles, stored.shape, vec4Rows), kernels);
    return;
  }
  const matrixStored = keyValueMatrix && matrixQuery && oneChunk ? planMatrixStoredScores(problem, tiles.headDimQk, keyValueMatrix, caps, budget) : null;
  if (keyValueMatrix && matrixStored) {
    recordMatrixStoredScores(run, matrixStored, kernels, tiles, keyValueMatrix, buffers, paddedKeyValues(), prologue);
    return;
  }
  if (keyLength > 0 && 'direct' in keyValuePlan && keyValueMatrix) {
    matrixKeyValueRecording(run, kernels.keyValue, tiles, keyValueMatrix, buffers, paddedKeyValues(), prologue)(keyValuePlan.direct);
  } else if (keyLength > 0 && 'direct' in keyValuePlan) {
    dispatchGradient(run, keyValueKernel(false), kernels.keyValue, keyValuePlan.direct, 'kv');
  }
  if (keyLength > 0 && 'partial' in keyValuePlan) {
    const { source, perWorkgroup } = keyValueKernel(true);
    recordPartialKeyValue(run, keyValuePlan.partial, {
      source,
      finish: flashKernel('flash-backward-finish', finishSource, variant, tiles, { THREADS: tiles.backwardKeys }),
      keysPerWorkgroup: perWorkgroup,
      finishThreads: tiles.backwardKeys,
    });
  }
  if (queryLength > 0) {
    const queryConstants = { THREADS: tiles.forwardThreads, BLOCK_N: tiles.forwardKeys };
    const queryKernel = (partial: boolean) =>
      gradientKernel('flash-backward-query', querySourceFor, partial, variant, tiles, tiles.tiledQuery, queryConstants, vec4Rows, paired && !partial);
    const workgroupsOf = (perWorkgroup: number) => (chunk: Chunk) => [Math.ceil(chunk.rows.count / perWorkgroup), chunk.heads.count, chunk.batch.count] as const;
    const wholeKeys = chunks.query.every((chunk) => chunk.keys.count === keyLength);
    if (wholeKeys && matrixQuery) {
      recordMatrixQuery(run, chunks.query, kernels.query, tiles, matrixQuery, paddedKeyValues());
    } else if (wholeKeys) {
      dispatchGradient(run, queryKernel(false), kernels.query, chunks.query, 'query');
    } else {
      const { source, perWorkgroup } = queryKernel(true);
      recordPartialQuery(run, chunks.query, {
        source,
        finish: flashKernel('flash-backward-query-finish', queryFinishSource, variant, tiles, { THREADS: tiles.rows }),
        workgroups: workgroupsOf(perWorkgroup),
        finishThreads: tiles.rows,
      });
    }
  }
}

/**
 * The backward's dK/dV and dQ through stored score gradients (stored-scores.ts), piece by piece: zero the piece's
 * slots where the plan says so, the tiled dK/dV kernel writing dS into them, then dQ = dS K
 * (flash-backward-query-stored.wgsl, which binds only k, the logsumexp, dq and the scores).
 */
function recordStoredScores(
  run: BackwardRun,
  plan: StoredScoresPlan,
  keyValue: { source: KernelSource; perWorkgroup: number; paired: boolean },
  query: KernelSource,
  bindings: { readonly keyValue: KernelBindings; readonly query: KernelBindings },
): void {
  const { recorder } = run;
  const scratch = recorder.scratch(plan.bytes, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST, 'flash backward stored scores');
  const queryBindings = { ...bindings.query, tensors: bindings.query.tensors.filter((t) => t.name === 'k' || t.name === 'dq') };
  const rowsPerWorkgroup = storedQueryRows(plan.shape);
  // The logsumexp binding of every piece's dQ (bound per piece; made once: staged, it owns a scratch).
  const logsumexp = run.rowStats('query', plan.pieces.map((piece) => piece.query)).slice(0, 1);
  for (const piece of plan.pieces) {
    if (plan.clears) recorder.clear(scratch, piece.bytes);
    const scores: [number, BoundBuffer] = [BINDING.first + 8, { buffer: scratch, offset: 0, size: piece.bytes }];
    dispatchGradient(run, keyValue, bindings.keyValue, [piece.keyValue], 'kv', { whole: [scores], uniforms: piece.uniforms });
    dispatchChunks(
      recorder,
      query,
      run.problem,
      queryBindings,
      [piece.query],
      run.tensors,
      [...run.optional, scores],
      (chunk) => run.uniforms({ ...chunk, ...piece.uniforms }),
      (chunk) => [Math.ceil(chunk.rows.count / rowsPerWorkgroup), chunk.heads.count, chunk.batch.count],
      logsumexp,
    );
  }
}

/**
 * A tiled or compact gradient kernel (gradientKernel) over `chunks`: one workgroup per `perWorkgroup` query rows
 * (dQ, `heads` 'query') or keys (dK/dV, 'kv') of a chunk, half as many when the kernel pairs its blocks; `extra`
 * bindings bound whole and uniforms (the stored scores).
 */
function dispatchGradient(
  run: BackwardRun,
  kernel: { source: KernelSource; perWorkgroup: number; paired: boolean },
  bindings: KernelBindings,
  chunks: readonly Chunk[],
  heads: ChunkHeads,
  extra: { readonly whole?: readonly (readonly [number, BoundBuffer])[]; readonly uniforms?: Readonly<Record<string, number>> } = {},
): void {
  const { source, perWorkgroup, paired } = kernel;
  dispatchChunks(
    run.recorder,
    source,
    run.problem,
    bindings,
    chunks,
    run.tensors,
    [...run.optional, ...(extra.whole ?? [])],
    (chunk) => run.uniforms({ ...chunk, ...extra.uniforms, paired_blocks: paired ? 1 : 0 }),
    (chunk) => [pairedWorkgroups(Math.ceil((heads === 'query' ? chunk.rows : chunk.keys).count / perWorkgroup), paired), chunk.heads.count, chunk.batch.count],
    run.rowStats(heads, chunks),
  );
}

/**
 * dQ on subgroup matrices after the matrix forward's direct form (flash-backward-query-matrix.wgsl): k and v
 * through the padded copies bound whole, the query-side tensors in the planned chunks.
 */
function recordMatrixQuery(
  run: BackwardRun,
  chunks: readonly Chunk[],
  bindings: KernelBindings,
  tiles: FlashTiles,
  shape: MatrixQueryShape,
  padded: KeyValueCopies,
): void {
  const { recorder, problem } = run;
  const rowsPerWorkgroup = shape.subgroups * 16;
  // Causal row blocks in pairs (balanced-blocks.ts).
  const paired = pairsMirroredBlocks(problem);
  dispatchChunks(
    recorder,
    matrixQueryKernel(recorder.gpu, variantOf(problem), tiles, shape, {
      q: rowsOfEights(problem.layout.q, problem.headDimQk),
      gradOut: rowsOfEights(run.gradients.gradOut, problem.headDimV),
      dq: rowsOfEights(run.gradients.dq, problem.headDimQk),
    }),
    padded.problem,
    { ...bindings, tensors: bindings.tensors.filter((t) => t.name !== 'k' && t.name !== 'v') },
    chunks,
    run.tensors,
    [...run.optional, [BINDING.first + 1, padded.k], [BINDING.first + 2, padded.v]],
    (chunk) => packFlashUniforms(padded.problem, run.gradients, undefined, run.residual, { ...chunk, paired_blocks: paired ? 1 : 0 }),
    (chunk) => [pairedWorkgroups(Math.ceil(chunk.rows.count / rowsPerWorkgroup), paired), chunk.heads.count, chunk.batch.count],
    run.rowStats('query', chunks),
  );
}

/**
 * dK/dV on subgroup matrices after the matrix forward's direct form (flash-backward-key-value-matrix.wgsl): k and v
 * through the padded copies, q and dO through padded copies of their own (q's NaN values as 0: the prologue's, or
 * recorded here), all bound whole, dk and dv in the planned chunks (kv heads × keys, every query row). Returns its
 * dispatch over chunks, with `extra` bindings bound whole and uniforms (`storesScores`: the kernel that also writes
 * dS, matrix-stored-scores.ts).
 */
function matrixKeyValueRecording(
  run: BackwardRun,
  bindings: KernelBindings,
  tiles: FlashTiles,
  shape: MatrixKeyValueShape,
  buffers: FlashBackwardBuffers,
  padded: KeyValueCopies,
  prologue: PrologueCopies | undefined,
  storesScores = false,
): (chunks: readonly Chunk[], extra?: { readonly whole?: readonly (readonly [number, BoundBuffer])[]; readonly uniforms?: Readonly<Record<string, number>> }) => void {
  const { recorder, problem } = run;
  const keysPerWorkgroup = shape.subgroups * 16;
  const rows = Math.ceil(problem.queryLength / shape.rows) * shape.rows;
  const querySide = { batches: problem.batch, heads: problem.queryHeads, length: problem.queryLength, cuSeqlens: varlenOffsets(problem, buffers.cuSeqlensQ, 'cuSeqlensQ') };
  const q = prologue?.q ?? recordPaddedCopy(recorder, { ...querySide, buffer: buffers.q, layout: problem.layout.q, dims: problem.headDimQk }, rows, tiles.headDimQk, 'zero-nan', 'flash padded q');
  const gradOut = prologue?.gradOut ?? recordPaddedCopy(recorder, { ...querySide, buffer: buffers.gradOut, layout: run.gradients.gradOut, dims: problem.headDimV }, rows, tiles.headDimV, 'plain', 'flash padded dO');
  const kernelProblem = { ...padded.problem, layout: { ...padded.problem.layout, q: q.layout } };
  const gradients = { ...run.gradients, gradOut: gradOut.layout };
  const copied = new Set(['q', 'k', 'v', 'gradOut']);
  const source = matrixKeyValueKernel(
    recorder.gpu,
    variantOf(problem),
    tiles,
    shape,
    { dk: rowsOfEights(run.gradients.dk, problem.headDimQk), dv: rowsOfEights(run.gradients.dv, problem.headDimV) },
    storesScores,
    heaviestKeysFirst(problem),
  );
  return (chunks, extra = {}) =>
    dispatchChunks(
      recorder,
      source,
      kernelProblem,
      { ...bindings, tensors: bindings.tensors.filter((t) => !copied.has(t.name)) },
      chunks,
      run.tensors,
      [...run.optional, [BINDING.first, q.buffer], [BINDING.first + 1, padded.k], [BINDING.first + 2, padded.v], [BINDING.first + 3, gradOut.buffer], ...(extra.whole ?? [])],
      (chunk) => packFlashUniforms(kernelProblem, gradients, undefined, run.residual, { ...chunk, ...extra.uniforms }),
      (chunk) => [Math.ceil(chunk.keys.count / keysPerWorkgroup), chunk.heads.count, chunk.batch.count],
      run.rowStats('kv', chunks),
    );
}

/**
 * The matrix backward's dK/dV and dQ through stored score gradients (matrix-stored-scores.ts), piece by piece: the
 * matrix dK/dV kernel writing dS into the piece's slots, then dQ = dS K (flash-backward-query-matrix-stored.wgsl,
 * which binds only the padded k copy, the logsumexp, dq and the scores). No piece is zeroed.
 */
function recordMatrixStoredScores(
  run: BackwardRun,
  plan: MatrixStoredScoresPlan,
  bindings: { readonly keyValue: KernelBindings; readonly query: KernelBindings },
  tiles: FlashTiles,
  keyValueShape: MatrixKeyValueShape,
  buffers: FlashBackwardBuffers,
  padded: KeyValueCopies,
  prologue: PrologueCopies | undefined,
): void {
  const { recorder, problem } = run;
  const scratch = recorder.scratch(plan.bytes, GPUBufferUsage.STORAGE, 'flash backward stored scores');
  const keyValue = matrixKeyValueRecording(run, bindings.keyValue, tiles, keyValueShape, buffers, padded, prologue, true);
  const query = matrixStoredQueryKernel(recorder.gpu, variantOf(problem), tiles, plan.query, rowsOfEights(run.gradients.dq, problem.headDimQk));
  const queryBindings = { ...bindings.query, tensors: bindings.query.tensors.filter((t) => t.name === 'dq') };
  const rowsPerWorkgroup = plan.query.subgroups * 16;
  // The logsumexp binding of every piece's dQ (bound per piece; made once: staged, it owns a scratch).
  const logsumexp = run.rowStats('query', plan.pieces.map((piece) => piece.query)).slice(0, 1);
  for (const piece of plan.pieces) {
    const scores: [number, BoundBuffer] = [BINDING.first + 8, { buffer: scratch, offset: 0, size: piece.bytes }];
    keyValue([piece.keyValue], { whole: [scores], uniforms: piece.uniforms });
    dispatchChunks(
      recorder,
      query,
      padded.problem,
      queryBindings,
      [piece.query],
      run.tensors,
      [...run.optional, [BINDING.first + 1, padded.k], scores],
      (chunk) => packFlashUniforms(padded.problem, run.gradients, undefined, run.residual, { ...chunk, ...piece.uniforms }),
      (chunk) => [Math.ceil(chunk.rows.count / rowsPerWorkgroup), chunk.heads.count, chunk.batch.count],
      logsumexp,
    );
  }
}

/** A scratch buffer bound from its start over `bytes`. */
const scratchBinding = (buffer: GPUBuffer, bytes: number): BoundBuffer => ({ buffer, offset: 0, size: Math.max(4, bytes) });

/**
 * dQ when the keys do not fit one binding: per row chunk, the partial kernel runs over its key chunks in order,
 * continuing f32 sums in scratch (the rows' [heads, rows, Dqk], seen through the dq_* uniforms); then the finish
 * kernel writes those rows of dq in its layout and dtype.
 */
function recordPartialQuery(
  run: BackwardRun,
  chunks: readonly Chunk[],
  kernels: { source: KernelSource; finish: KernelSource; workgroups: (chunk: Chunk) => readonly [number, number, number]; finishThreads: number },
): void {
  const { recorder, problem, packing } = run;
  const bindings = queryPartialBindings(problem, run.gradients, run.residual, packing);
  const groups = rowGroups(chunks);
  const scratchOf = (chunk: Chunk) => queryScratch(problem, chunk, packing);
  const most = largest(groups.map((group) => scratchOf(group[0]!).elements));
  const scratch = recorder.scratch(most * 4, GPUBufferUsage.STORAGE, 'flash backward dq scratch');
  const rowStats = run.rowStats('query', chunks);
  for (const group of groups) {
    const { layout, elements } = scratchOf(group[0]!);
    const partialLayout = { dq_batch: layout.batch, dq_head: layout.head, dq_seq: layout.sequence, dq_dim: layout.dim, dq_offset: layout.offset };
    group.forEach((chunk, index) => {
      dispatchChunks(
        recorder,
        kernels.source,
        problem,
        bindings.partial,
        [chunk],
        run.tensors,
        [...run.optional, [BINDING.first + 6, scratchBinding(scratch, elements * 4)]],
        (values) => run.uniforms({ ...values, ...partialLayout, dq_partial: index === 0 ? 0 : 1 }),
        kernels.workgroups,
        rowStats,
      );
    });
    const rows = { ...group[0]!, keys: { start: 0, count: problem.keyLength } };
    const scratchLayout = { s_batch: layout.batch, s_head: layout.head, s_seq: layout.sequence, s_dim: layout.dim, s_offset: layout.offset };
    dispatchChunks(
      recorder,
      kernels.finish,
      problem,
      bindings.finish,
      [rows],
      run.tensors,
      [...run.optional, [BINDING.first, scratchBinding(scratch, elements * 4)]],
      (values) => run.uniforms({ ...values, ...scratchLayout }),
      (chunk) => [Math.ceil(chunk.rows.count / kernels.finishThreads), chunk.heads.count, chunk.batch.count],
    );
  }
}

/**
 * dK/dV one kv head and key range at a time when its query rows do not fit a binding: the partial kernel runs
 * over chunks of the kv head's query heads × rows (in the unsplit order), continuing f32 sums in scratch
 * [keys, D]; then the finish kernel writes that key range of dk and dv in their layouts and dtype.
 */
function recordPartialKeyValue(
  run: BackwardRun,
  plan: readonly (readonly Chunk[])[],
  kernels: { source: KernelSource; finish: KernelSource; keysPerWorkgroup: number; finishThreads: number },
): void {
  const { recorder, problem, packing } = run;
  const { headDimQk, headDimV } = problem;
  const bindings = keyValuePartialBindings(problem, run.gradients, run.residual, packing);
  const group = problem.queryHeads / problem.kvHeads;
  const most = largest(plan.map((chunks) => chunks[0]!.keys.count));
  const scratchK = recorder.scratch(most * headDimQk * 4, GPUBufferUsage.STORAGE, 'flash backward dk scratch');
  const scratchV = recorder.scratch(most * headDimV * 4, GPUBufferUsage.STORAGE, 'flash backward dv scratch');
  const rowStats = run.rowStats('query', plan.flat());
  // dk and dv point at the scratch: contiguous f32 [keys, D] from the chunk's first key (packed varlen: also
  // shifted back by the sequence's first key, as the kernel adds it; u32 arithmetic wraps).
  const scratchOf = (chunk: Chunk) => {
    const keyStart = (problem.varlen && packing ? packing.cuSeqlensK[chunk.batch.start]! : 0) + chunk.keys.start;
    return {
      dk_batch: 0, dk_head: 0, dk_seq: headDimQk, dk_dim: 1, dk_offset: shiftedOffset(0, keyStart * headDimQk),
      dv_batch: 0, dv_head: 0, dv_seq: headDimV, dv_dim: 1, dv_offset: shiftedOffset(0, keyStart * headDimV),
    };
  };
  for (const chunks of plan) {
    const first = chunks[0]!;
    const kvHead = Math.floor(first.heads.start / group);
    const scratch = scratchOf(first);
    const keys = first.keys.count;
    chunks.forEach((chunk, index) => {
      dispatchChunks(
        recorder,
        kernels.source,
        problem,
        bindings.partial,
        [chunk],
        run.tensors,
        [...run.optional, [BINDING.first + 6, scratchBinding(scratchK, keys * headDimQk * 4)], [BINDING.first + 7, scratchBinding(scratchV, keys * headDimV * 4)]],
        (values) =>
          run.uniforms({
            ...values,
            ...scratch,
            head_base: kvHead,
            group_first: chunk.heads.start - kvHead * group,
            group_count: chunk.heads.count,
            kv_partial: index === 0 ? 0 : 1,
          }),
        () => [Math.ceil(keys / kernels.keysPerWorkgroup), 1, 1],
        rowStats,
      );
    });
    dispatchChunks(
      recorder,
      kernels.finish,
      problem,
      bindings.finish,
      [finishChunk(problem, first, group)],
      run.tensors,
      [...run.optional, [BINDING.first, scratchBinding(scratchK, keys * headDimQk * 4)], [BINDING.first + 1, scratchBinding(scratchV, keys * headDimV * 4)]],
      run.uniforms,
      () => [Math.ceil(keys / kernels.finishThreads), 1, 1],
    );
  }
}

function assertGradientBuffers(problem: AttentionProblem, buffers: FlashBackwardBuffers): void {
  if (problem.varlen || problem.batch === 0) return;
  const layouts = gradientLayouts(problem, buffers.layouts);
  const bytes = problem.dtype === 'f16' ? 2 : 4;
  const { batch, queryHeads, kvHeads, queryLength, keyLength, headDimQk, headDimV } = problem;
  const check = (name: string, buffer: GPUBuffer, layout: AttentionLayout, heads: number, length: number, dim: number) => {
    if (length > 0) assertBufferHolds(name, buffer, layoutSpan(layout, batch, heads, length, dim), bytes);
  };
  check('gradOut', buffers.gradOut, layouts.gradOut, queryHeads, queryLength, headDimV);
  check('dq', buffers.dq, layouts.dq, queryHeads, queryLength, headDimQk);
  check('dk', buffers.dk, layouts.dk, kvHeads, keyLength, headDimQk);
  check('dv', buffers.dv, layouts.dv, kvHeads, keyLength, headDimV);
}

/**
 * FlashAttention-2 backward on plain GPUBuffers: dq, dk, dv of sum(out ∘ gradOut), from the forward's out and
 * logsumexp. GQA gradients are summed over the query heads sharing a kv head; dropout bits are regenerated from
 * the same seed/offset; rows without any allowed key get zero gradients. Recording and release as
 * `flashAttentionForward`.
 */
export function flashAttentionBackward(
  device: GPUDevice,
  problem: AttentionProblem,
  buffers: FlashBackwardBuffers,
  options: FlashRecordOptions = {},
): FlashRecording {
  const caps = recordingCaps(device, options);
  assertRunnable(checkFlash({ ...problem, requiresGrad: true }, caps), 'flashAttentionBackward');
  assertProblemBuffers(problem, buffers);
  assertGradientBuffers(problem, buffers);
  const encoder = options.encoder ?? device.createCommandEncoder({ label: 'flash backward' });
  const recorder = rawRecorder(device, encoder);
  recordFlashBackward(recorder, caps, problem, buffers);
  if (options.encoder) return { release: () => recorder.finish() };
  device.queue.submit([encoder.finish()]);
  recorder.finish();
  return { release: () => undefined };
}
