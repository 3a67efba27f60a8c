/**
 * The subgroup-matrix forward (flash-forward-matrix.wgsl) on the conformance suite in f16 (and in a third of the
 * cases the backward that follows it), with the matrix builtins emulated (lavapipe has no subgroup matrices; scripts/gpu-check.ts runs
 * the real ones on the GPU machine): its indexing, barriers, lazy rescaling, masks, dropout and NaN handling, in
 * both forms: key and value matrices from padded copies of k and v (DIRECT_KV: every conformance case, packed varlen
 * unpacked into the copies' batch entries) and staged through workgroup memory (where the copies exceed a binding).
 */
import { gpu } from '../test/test-device';
import { attentionCases, inHalfPrecision } from '@webattn/reference/testing';
import { describeAttention, tensor, type Tensor } from '@webattn/tensor';
import { expectNoGpuErrors, freshSeed, randomValues } from '@webattn/tensor/testing';
import { afterAll, describe, expect, it } from 'vitest';
import { checkFlashCase } from '../test/conformance-case';
import { flashAttention, flashAttentionGrad } from './flash-attention';
import { HEAD_DIM_BUCKETS, forwardRowsPerWorkgroup, forwardTilesFit, forwardTuningKey, recordingTiles, tunedForwardTilesOf, type ForwardTiles } from './flash-tiles';
import { emulateSubgroupMatrices, withEmulatedMatrices } from './subgroup-matrix-emulation';
import { directKeyValuesAllowed, keysReadInPlace, paddedKeyRows, paddedKeyValuesUnavailable } from './padded-key-values';
import { pairsMirroredBlocks } from './balanced-blocks';
import { forwardBindings, planKernelChunks } from './flash-chunks';
import { both, expectCloseToReferences, expectSameBits, runPacked, runRaw, type Outputs, type RawInputs } from '../test/chunked-runs';
import { layoutSpan } from './check-flash';
import { describeCase, prepare, type FlashCase } from '../test/flash-harness';

afterAll(() => gpu?.destroy());
let matrixCases = 0;

const cases = attentionCases.filter((kase) => kase.dtype === 'f32').map(inHalfPrecision);

/**
 * One run of the NaN test: the Tensor API for the direct forms; for 'staged' the raw API under a binding limit that k
 * and v fit (the whole problem in one dispatch) but their padded copies, whole key tiles, do not.
 */
async function nanFormOutputs(form: 'direct' | 'direct, packed varlen' | 'staged', inputs: RawInputs, gradOut: Tensor): Promise<Outputs> {
  const device = gpu!;
  const { q, k, v, options } = inputs;
  if (form === 'staged') {
    const problem = describeAttention(q, k, v, { ...options, requiresGrad: true });
    const limit = layoutSpan(problem.layout.k, problem.batch, problem.kvHeads, problem.keyLength, problem.headDimQk) * 2;
    const caps = { ...withEmulatedMatrices(device.caps), maxStorageBufferBindingSize: limit };
    expect(paddedKeyValuesUnavailable(problem, 16, 16, caps, { k: k.buffer, v: v.buffer })).toMatch(/beyond one binding/);
    return runRaw(inputs, problem, gradOut, both(limit));
  }
  const results = await expectNoGpuErrors(device, () => {
    const forward = flashAttention(q, k, v, options);
    return { ...forward, ...flashAttentionGrad(q, k, v, forward.out, forward.logsumexp, gradOut, options) };
  });
  const read = async (t: Tensor) => (await t.toArray()) as Float32Array;
  const outputs = { out: await read(results.out), logsumexp: await read(results.logsumexp), dq: await read(results.dq), dk: await read(results.dk), dv: await read(results.dv) };
  for (const t of Object.values(results)) t.dispose();
  return outputs;
}

describe.skipIf(!gpu?.caps.shaderF16)('subgroup-matrix forward (emulated builtins)', () => {
  it('is the f16 default where subgroup matrices exist (direct up to head dim 128, staged up to 32), with the tiled backward', () => {
    emulateSubgroupMatrices(gpu!.gpu);
    const tilesOf = (headDim: number, directKeyValues: boolean, dtype: 'f16' | 'f32' = 'f16') =>
      recordingTiles(gpu!.gpu, { dtype, headDimQk: headDim, headDimV: headDim, directKeyValues }, gpu!.caps);
    for (const headDim of [8, 16, 24, 32, 64, 128]) {
      const tiles = tilesOf(headDim, true);
      expect(tiles?.forward.kernel, `D${headDim}`).toBe('matrix');
      expect(tiles?.directKeyValues).toBe(true);
      // (lavapipe's 32 KiB of workgroup storage holds no tiled backward at head dim 128.)
      if (headDim <= 64) expect(tiles?.tiledKeyValue).not.toBeNull();
    }
    for (const headDim of [8, 16, 32]) expect(tilesOf(headDim, false)).toMatchObject({ forward: { kernel: 'matrix' }, directKeyValues: false });
    expect(tilesOf(64, false)?.forward.kernel).not.toBe('matrix');
    expect(tilesOf(16, true, 'f32')).toMatchObject({ forward: { kernel: 'tiled' }, directKeyValues: false });
  });

  // Every case runs the matrix forward (as a tuned choice) where one fits the device's workgroup storage (lavapipe:
  // 32 KiB, so not at head dim 128), its shape cycling through subgroups 2 and 4, row blocks 1 and 2, keys 16 and 32.
  const shapes: ForwardTiles[] = [
    { kernel: 'matrix', threads: 64, rowsPerThread: 1, keys: 32 },
    { kernel: 'matrix', threads: 64, rowsPerThread: 2, keys: 16 },
    { kernel: 'matrix', threads: 128, rowsPerThread: 1, keys: 16 },
  ];
  const useMatrixForward = (index: number) => {
    const caps = withEmulatedMatrices(gpu!.caps);
    const tuned = tunedForwardTilesOf(gpu!.gpu);
    for (const qk of HEAD_DIM_BUCKETS) {
      for (const v of HEAD_DIM_BUCKETS) {
        const fitting = [...shapes.slice(index % shapes.length), ...shapes].find((tiles) => forwardTilesFit(tiles, qk, v, caps));
        if (fitting) tuned.set(forwardTuningKey('f16', qk, v), fitting);
        else tuned.delete(forwardTuningKey('f16', qk, v));
      }
    }
  };
  const matrixFits = (headDimQk: number, headDimV: number) =>
    shapes.some((tiles) => forwardTilesFit(tiles, headDimQk, headDimV, withEmulatedMatrices(gpu!.caps)));
  let directCases = 0;
  let varlenDirectCases = 0;

  cases.forEach((kase, index) => {
    it(kase.name, async () => {
      const device = gpu!;
      emulateSubgroupMatrices(device.gpu);
      useMatrixForward(index);
      // The backward that follows (the tiled or compact family, on the matrix forward's logsumexp) in every third
      // case: each compiles its own f16 kernels, slow on a cold lavapipe.
      await checkFlashCase(device, kase, {
        backward: index % 3 === 0,
        inspect: (tensors) => {
          const [headDimQk, headDimV] = [tensors.q.shape.at(-1)!, tensors.v.shape.at(-1)!];
          // Every case here takes the padded copies (packed varlen too).
          const directKeyValues = directKeyValuesAllowed(describeAttention(tensors.q, tensors.k, tensors.v, tensors.options), device.caps, {
            k: tensors.k.buffer,
            v: tensors.v.buffer,
          });
          expect(directKeyValues).toBe(true);
          const tiles = recordingTiles(device.gpu, { dtype: 'f16', headDimQk, headDimV, directKeyValues }, device.caps);
          if (matrixFits(headDimQk, headDimV)) expect(tiles?.forward.kernel).toBe('matrix');
          if (tiles?.forward.kernel === 'matrix') matrixCases++;
          if (tiles?.directKeyValues) directCases++;
          if (tiles?.directKeyValues && tensors.options.cuSeqlensQ) varlenDirectCases++;
        },
      });
    });
  });

  // Direct: padded copies, NaN values of v recorded by the copy (dense with a bool mask, and packed varlen: two
  // sequences unpacked into the copies' batch entries); staged: a binding limit that k and v fit but their padded
  // copies (whole key tiles) do not.
  const nanForms = ['direct', 'direct, packed varlen', 'staged'] as const;
  for (const form of nanForms) {
    it(`NaN inputs (${form}): a NaN in q row i or in a k row i may attend makes row i NaN; a NaN in v[j, d] only out[i, d] of the rows attending j; dq, dk, dv NaN as flash-nan.test.ts`, async () => {
      const device = gpu!;
      emulateSubgroupMatrices(device.gpu);
      useMatrixForward(0);
      const [L, S, D] = [40, 40, 16];
      // Packed: sequences of rows (and keys) [0, 17) and [17, 40); else one. Causal top-left within each, and
      // (dense direct) a bool mask removing key 3 from row 7.
      const packed = form === 'direct, packed varlen';
      const starts = packed ? [0, 17] : [0];
      const sequenceOf = (index: number) => (packed && index >= 17 ? 1 : 0);
      const mask = Uint8Array.from({ length: L * S }, (_, e) => (form === 'direct' && Math.floor(e / S) === 7 && e % S === 3 ? 0 : 1));
      const attends = (row: number, key: number) => sequenceOf(row) === sequenceOf(key) && key <= row && mask[row * S + key] === 1;
      // Row i's logsumexp: [sequences, 1, longest] when packed.
      const longest = packed ? 23 : L;
      const lseIndex = (row: number) => sequenceOf(row) * longest + row - starts[sequenceOf(row)]!;
      // dq: the rows with a NaN logsumexp, and those attending a NaN value (their dP, so dS, is NaN); dk: the keys
      // such rows attend; dv: the keys rows with a NaN logsumexp attend (as flash-nan.test.ts).
      const keysOf = (rows: (row: number) => boolean) => (key: number) => Array.from({ length: L }, (_, row) => row).some((row) => rows(row) && attends(row, key));
      const poisons = [
        { what: 'q', row: 5, column: 2, out: (row: number) => row === 5, lse: (row: number) => row === 5, dq: (row: number) => row === 5, dk: keysOf((row) => row === 5), dv: keysOf((row) => row === 5) },
        { what: 'k', row: 3, column: 9, out: (row: number) => attends(row, 3), lse: (row: number) => attends(row, 3), dq: (row: number) => attends(row, 3), dk: keysOf((row) => attends(row, 3)), dv: keysOf((row) => attends(row, 3)) },
        { what: 'v', row: 20, column: 15, out: (row: number, column: number) => column === 15 && attends(row, 20), lse: () => false, dq: (row: number) => attends(row, 20), dk: keysOf((row) => attends(row, 20)), dv: () => false },
      ] as const;
      for (const poison of poisons) {
        const seed = freshSeed();
        const values = { q: randomValues(L * D, seed), k: randomValues(S * D, seed + 1), v: randomValues(S * D, seed + 2) };
        values[poison.what][poison.row * D + poison.column] = Number.NaN;
        // The same memory as [1, 1, L, D] or, packed, [L, 1, D].
        const shape = packed ? [L, 1, D] : [1, 1, L, D];
        const [q, k, v] = [values.q, values.k, values.v].map((data) => tensor(device, data, shape, { dtype: 'f16' }));
        const gradOut = tensor(device, randomValues(L * D, seed + 3), shape, { dtype: 'f16' });
        const attnMask = form === 'direct' ? tensor(device, mask, [L, S], { dtype: 'bool' }) : undefined;
        const options = packed ? { isCausal: true, cuSeqlensQ: [0, 17, L], cuSeqlensK: [0, 17, S] } : { isCausal: true, ...(attnMask ? { attnMask } : {}) };
        const outputs = await nanFormOutputs(form, { q: q!, k: k!, v: v!, attnMask, options }, gradOut);
        for (let e = 0; e < L * D; e++) {
          const [row, column] = [Math.floor(e / D), e % D];
          expect(Number.isNaN(outputs.out[e]!), `out[${row}, ${column}] = ${outputs.out[e]} with ${poison.what} NaN (seed ${seed})`).toBe(poison.out(row, column));
        }
        for (let row = 0; row < L; row++) {
          const lse = outputs.logsumexp[lseIndex(row)]!;
          expect(Number.isNaN(lse), `logsumexp of row ${row} = ${lse} with ${poison.what} NaN (seed ${seed})`).toBe(poison.lse(row));
        }
        for (let e = 0; e < L * D; e++) {
          const row = Math.floor(e / D);
          expect(Number.isNaN(outputs.dq![e]!), `dq[${row}, ${e % D}] = ${outputs.dq![e]} with ${poison.what} NaN (seed ${seed})`).toBe(poison.dq(row));
        }
        for (let e = 0; e < S * D; e++) {
          const key = Math.floor(e / D);
          expect(Number.isNaN(outputs.dk![e]!), `dk[${key}, ${e % D}] = ${outputs.dk![e]} with ${poison.what} NaN (seed ${seed})`).toBe(poison.dk(key));
          expect(Number.isNaN(outputs.dv![e]!), `dv[${key}, ${e % D}] = ${outputs.dv![e]} with ${poison.what} NaN (seed ${seed})`).toBe(poison.dv(key));
        }
        for (const t of [q!, k!, v!, gradOut, ...(attnMask ? [attnMask] : [])]) t.dispose();
      }
    });
  }

  it('direct: NaN and ±∞ in v reach exactly out[i, d] of the rows i attending them (NaN where ±∞ meet); masked keys and keys past keyLengths none; head dim 24 in [B, L, H, D] memory', async () => {
    const device = gpu!;
    emulateSubgroupMatrices(device.gpu);
    useMatrixForward(1);
    const [B, H, L, D] = [2, 2, 37, 24];
    const keyLengths = [37, 20];
    // Causal top-left; the bool mask removes key 14 from rows 20 and later.
    const mask = Uint8Array.from({ length: L * L }, (_, e) => (Math.floor(e / L) >= 20 && e % L === 14 ? 0 : 1));
    const attends = (b: number, row: number, key: number) => key <= row && key < keyLengths[b]! && mask[row * L + key] === 1;
    const [inf, nan] = [Number.POSITIVE_INFINITY, Number.NaN];
    // [b, h, key, dim, value]: the last two lie past batch 1's key length.
    const poisons: [number, number, number, number, number][] = [
      [0, 1, 5, 3, inf],
      [0, 1, 9, 3, -inf],
      [0, 1, 11, 7, nan],
      [0, 0, 14, 2, inf],
      [1, 1, 2, 23, -inf],
      [1, 0, 25, 0, nan],
      [1, 0, 30, 1, inf],
    ];
    const expected = (b: number, h: number, row: number, dim: number): number | null => {
      const reaching = poisons.filter(([pb, ph, key, d]) => pb === b && ph === h && d === dim && attends(b, row, key)).map((p) => p[4]);
      if (reaching.length === 0) return null;
      if (reaching.some(Number.isNaN) || (reaching.includes(inf) && reaching.includes(-inf))) return nan;
      return reaching[0]!;
    };
    const seed = freshSeed();
    const size = B * L * H * D;
    const clean = { q: randomValues(size, seed), k: randomValues(size, seed + 1), v: randomValues(size, seed + 2) };
    const poisoned = clean.v.slice();
    for (const [b, h, key, d, value] of poisons) poisoned[((b * L + key) * H + h) * D + d] = value;
    const run = async (vValues: Float32Array) => {
      // [B, L, H, D] memory viewed as [B, H, L, D].
      const [q, k, v] = [clean.q, clean.k, vValues].map((data) => tensor(device, data, [B, L, H, D], { dtype: 'f16' }));
      const attnMask = tensor(device, mask, [L, L], { dtype: 'bool' });
      const views = [q!, k!, v!].map((t) => t.transpose(1, 2));
      const { out, logsumexp } = await expectNoGpuErrors(device, () => flashAttention(views[0]!, views[1]!, views[2]!, { isCausal: true, attnMask, keyLengths }));
      const values = (await out.toArray()) as Float32Array;
      for (const t of [q!, k!, v!, ...views, attnMask, out, logsumexp]) t.dispose();
      return values;
    };
    const [reference, actual] = [await run(clean.v), await run(poisoned)];
    let special = 0;
    for (let e = 0; e < B * H * L * D; e++) {
      const [b, h, row, dim] = [Math.floor(e / (H * L * D)), Math.floor(e / (L * D)) % H, Math.floor(e / D) % L, e % D];
      const want = expected(b, h, row, dim);
      const where = `out[${b}, ${h}, ${row}, ${dim}] (seed ${seed})`;
      if (want === null) {
        // Untouched columns and rows: the same products as with the clean v, bit for bit.
        expect(actual[e] === reference[e], `${where}: ${actual[e]}, clean ${reference[e]}`).toBe(true);
      } else {
        special++;
        expect(actual[e], where).toBe(want);
      }
    }
    expect(special).toBeGreaterThan(50);
    expect(gpu!.pipelines.keys().some((key) => key.startsWith('flash-forward-matrix') && key.includes('DIRECT_KV') && key.includes('qk32'))).toBe(true);
  });

  it('direct: k read in place, its heads\' last tiles reaching into NaN rows past the keys: out and logsumexp finite and the same bits as k through its copy', async () => {
    const device = gpu!;
    emulateSubgroupMatrices(device.gpu);
    useMatrixForward(0);
    const [B, H, L, S, D, slack] = [2, 2, 19, 45, 16, 19];
    const seed = freshSeed();
    const kValues = randomValues(B * H * S * D, seed + 1);
    // k in place: a narrow view of [B, H, S + slack, D] whose rows past S are NaN (every tile fits inside it).
    const longer = new Float32Array(B * H * (S + slack) * D).fill(Number.NaN);
    for (let bh = 0; bh < B * H; bh++) longer.set(kValues.subarray(bh * S * D, (bh + 1) * S * D), bh * (S + slack) * D);
    const q = tensor(device, randomValues(B * H * L * D, seed), [B, H, L, D], { dtype: 'f16' });
    const v = tensor(device, randomValues(B * H * S * D, seed + 2), [B, H, S, D], { dtype: 'f16' });
    const kLonger = tensor(device, longer, [B, H, S + slack, D], { dtype: 'f16' });
    // The same keys in [B, S, H, D] memory: a head's rows are not adjacent, so k goes through its copy.
    const kDense = tensor(device, kValues, [B, H, S, D], { dtype: 'f16' });
    const kSpread = kDense.transpose(1, 2).contiguous();
    const forms = { 'in place': kLonger.narrow(2, 0, S), copied: kSpread.transpose(1, 2) };
    const limit = device.caps.maxStorageBufferBindingSize;
    const inPlace = (k: Tensor) => keysReadInPlace(describeAttention(q, k, v), k.buffer, paddedKeyRows(S, 64), D, limit);
    expect(inPlace(forms['in place'])).toBe(true);
    expect(inPlace(forms.copied)).toBe(false);
    const run = async (k: Tensor) => {
      const { out, logsumexp } = await expectNoGpuErrors(device, () => flashAttention(q, k, v, { keyLengths: [45, 30] }));
      const values = { out: (await out.toArray()) as Float32Array, logsumexp: (await logsumexp.toArray()) as Float32Array };
      out.dispose();
      logsumexp.dispose();
      return values;
    };
    const [direct, copied] = [await run(forms['in place']), await run(forms.copied)];
    for (const name of ['out', 'logsumexp'] as const) {
      expect(direct[name].every(Number.isFinite), `${name} finite (seed ${seed})`).toBe(true);
      const differing = direct[name].findIndex((value, e) => !Object.is(value, copied[name][e]));
      expect(differing, `${name}[${differing}]: ${direct[name][differing]} in place, ${copied[name][differing]} copied (seed ${seed})`).toBe(-1);
    }
    for (const t of [q, v, kLonger, kDense, kSpread, ...Object.values(forms)]) t.dispose();
  });

  it('causal balance: dQ row blocks paired across query-row chunks give the unsplit bits; both runs match the references (window open to the left, [B, L, H, D] memory)', async () => {
    const device = gpu!;
    emulateSubgroupMatrices(device.gpu);
    useMatrixForward(2);
    const seed = freshSeed();
    const spec: FlashCase = {
      batch: 1,
      queryHeads: 2,
      kvHeads: 1,
      queryLength: 300,
      keyLength: 24,
      headDimQk: 16,
      dtype: 'f16',
      layout: 'blhd',
      options: { isCausal: true, causalAlignment: 'bottom-right', window: [200, -1] },
    };
    const prepared = prepare(device, spec, seed);
    const context = describeCase(spec, seed);
    const problem = describeAttention(prepared.q, prepared.k, prepared.v, { ...prepared.options, requiresGrad: true });
    expect(pairsMirroredBlocks(problem)).toBe(true);
    // Chunks of 256 rows of both interleaved heads (the planner's row step), so one starts inside the sequence; each
    // holds several 32-row dQ blocks. (Few keys: lavapipe runs the emulated matrix builtins slowly.)
    const limit = 17000;
    const plan = planKernelChunks(problem, forwardBindings(problem, true), limit);
    expect('chunks' in plan && plan.chunks.some((chunk) => chunk.rows.start > 0), context).toBe(true);
    const gradValues = randomValues(300 * 2 * 16, seed + 3, -1, 1);
    const gradOut = tensor(device, gradValues, [1, 2, 300, 16], { dtype: 'f16' });
    const whole = await runRaw(prepared, problem, gradOut);
    const split = await runRaw(prepared, problem, gradOut, both(limit));
    // dK/dV: the matrix kernel unsplit, the tiled one summing over the row chunks (another order): references only.
    for (const name of ['out', 'logsumexp', 'dq'] as const) expectSameBits(name, split[name], whole[name], context);
    await expectCloseToReferences(whole, prepared, gradOut, gradValues, 'f16', context);
    await expectCloseToReferences(split, prepared, gradOut, gradValues, 'f16', context);
    const keys = device.pipelines.keys();
    expect(keys.some((key) => key.startsWith('flash-forward-matrix') && key.includes('qk16'))).toBe(true);
    expect(keys.some((key) => key.startsWith('flash-backward-query-matrix'))).toBe(true);
    for (const t of [gradOut, prepared.q, prepared.k, prepared.v]) t.dispose();
  });

  // keys · (Dqk + Dv) · 2 bytes = 3.07 MB a plane (12000 keys at D64, 24000 at D32): PLANE_CHUNK_BYTES (8 MiB)
  // holds two, so the grid (3 row blocks, the last one partial, × 3 planes) runs a chunk of 2 planes, then one of 1.
  // A grid order that skipped or repeated a workgroup would leave poisoned rows. Banded masks take the heaviest row
  // blocks first: reversed under causal and a right-bounded window in the tiled forward (f32) and the matrix forward
  // (D32: top-left, so that the emulated products stay few); unbanded forwards keep the plain order.
  const chunkedOrders: readonly [string, 'f16' | 'f32', number, number, FlashCase['options']][] = [
    ['matrix D64, no mask', 'f16', 64, 12000, {}],
    ['matrix D32, causal', 'f16', 32, 24000, { isCausal: true }],
    ['matrix D32, window [-1, 10]', 'f16', 32, 24000, { window: [-1, 10] }],
    ['tiled D64, causal (bottom-right)', 'f32', 64, 12000, { isCausal: true, causalAlignment: 'bottom-right' }],
    ['tiled D64, window [3000, 20]', 'f32', 64, 12000, { window: [3000, 20] }],
  ];
  it.each(chunkedOrders)('plane-chunked workgroup order with a short last chunk (%s): 3 planes, two to a chunk', async (_name, dtype, headDim, keyLength, options) => {
    const device = gpu!;
    emulateSubgroupMatrices(device.gpu);
    useMatrixForward(0);
    const seed = freshSeed();
    const tiles = recordingTiles(device.gpu, { dtype, headDimQk: headDim, headDimV: headDim, directKeyValues: dtype === 'f16' }, device.caps);
    expect(tiles?.forward.kernel).toBe(dtype === 'f16' ? 'matrix' : 'tiled');
    const queryLength = forwardRowsPerWorkgroup(tiles!.forward) * 2.5;
    // Planes per chunk as the kernels count them: PLANE_CHUNK_BYTES / (keys · (Dqk + Dv) · 2 bytes).
    expect(Math.floor(2 ** 23 / (keyLength * headDim * 2 * 2))).toBe(2);
    const spec: FlashCase = { batch: 3, queryHeads: 1, kvHeads: 1, queryLength, keyLength, headDimQk: headDim, dtype, options };
    const prepared = prepare(device, spec, seed);
    const context = describeCase(spec, seed);
    const problem = describeAttention(prepared.q, prepared.k, prepared.v, prepared.options);
    const outputs = await runRaw(prepared, problem, null);
    await expectCloseToReferences(outputs, prepared, null, null, dtype, context);
    for (const t of [prepared.q, prepared.k, prepared.v]) t.dispose();
  });

  // Staged (the NaN test above runs it causal): a binding limit that k and v fit (in chunks) but not their padded
  // copies, whole key tiles (B2 Hkv1 S45 D16: 2880 B of k, copies of at least 3072), with a bool mask, dropout and
  // key lengths.
  it('staged (padded copies beyond the binding limit) with a bool mask, dropout and key lengths: forward and backward match the references', async () => {
    const device = gpu!;
    emulateSubgroupMatrices(device.gpu);
    useMatrixForward(1);
    const seed = freshSeed();
    const mask = { shape: [2, 1, 37, 45], dtype: 'bool' as const, data: Array.from(randomValues(2 * 37 * 45, seed + 9, 0, 1), (x) => (x < 0.2 ? 0 : 1)) };
    const spec: FlashCase = {
      batch: 2,
      queryHeads: 2,
      kvHeads: 1,
      queryLength: 37,
      keyLength: 45,
      headDimQk: 16,
      dtype: 'f16',
      mask,
      options: { keyLengths: [45, 19], dropoutP: 0.25, dropoutSeed: seed, dropoutOffset: 3 },
    };
    const prepared = prepare(device, spec, seed);
    const context = describeCase(spec, seed);
    const problem = describeAttention(prepared.q, prepared.k, prepared.v, { ...prepared.options, requiresGrad: true });
    const limit = layoutSpan(problem.layout.k, 2, 1, 45, 16) * 2;
    const caps = { ...withEmulatedMatrices(device.caps), maxStorageBufferBindingSize: limit };
    expect(paddedKeyValuesUnavailable(problem, 16, 16, caps, { k: prepared.k.buffer, v: prepared.v.buffer }), context).toMatch(/beyond one binding/);
    expect(recordingTiles(device.gpu, { dtype: 'f16', headDimQk: 16, headDimV: 16, directKeyValues: false }, caps)?.forward.kernel).toBe('matrix');
    const gradValues = randomValues(2 * 2 * 37 * 16, seed + 3, -1, 1);
    const gradOut = tensor(device, gradValues, [2, 2, 37, 16], { dtype: 'f16' });
    const outputs = await runRaw(prepared, problem, gradOut, both(limit));
    await expectCloseToReferences(outputs, prepared, gradOut, gradValues, 'f16', context);
    for (const t of [gradOut, prepared.q, prepared.k, prepared.v, prepared.attnMask!]) t.dispose();
  });

  it('packed varlen through the padded copies (sequences unpacked), split over sequences: the unsplit bits, and both match the references', async () => {
    const device = gpu!;
    emulateSubgroupMatrices(device.gpu);
    useMatrixForward(0);
    const seed = freshSeed();
    // Query lengths 5, 32, 13; key lengths 9, 31, 21: every sequence but the first starts inside a key tile.
    const [cuSeqlensQ, cuSeqlensK] = [
      [0, 5, 37, 50],
      [0, 9, 40, 61],
    ];
    const spec: FlashCase = {
      batch: 3,
      queryHeads: 4,
      kvHeads: 1,
      queryLength: 32,
      keyLength: 31,
      headDimQk: 16,
      dtype: 'f16',
      // (The NaN test's variant: its kernels are compiled already.)
      options: { cuSeqlensQ, cuSeqlensK, isCausal: true, causalAlignment: 'bottom-right' },
    };
    const prepared = prepare(device, spec, seed);
    const context = describeCase(spec, seed);
    const problem = describeAttention(prepared.q, prepared.k, prepared.v, { ...prepared.options, requiresGrad: true });
    const packedRows = { cuSeqlensQ, cuSeqlensK };
    // The copies (3 sequences × 64 rows × 16 dims × 2 B = 6144 B) fit the limit, q (50 rows · 4 heads · 32 B = 6400 B)
    // does not: the kernels run sequences [0, 2) and [2, 3) apart.
    const limit = 6144;
    const caps = { ...withEmulatedMatrices(device.caps), maxStorageBufferBindingSize: limit };
    expect(directKeyValuesAllowed(problem, caps, { k: prepared.k.buffer, v: prepared.v.buffer }), context).toBe(true);
    const plan = planKernelChunks(problem, forwardBindings(problem, true, packedRows), limit);
    expect('chunks' in plan && plan.chunks.map((chunk) => chunk.batch.start), context).toEqual([0, 2]);
    const gradValues = randomValues(50 * 4 * 16, seed + 3, -1, 1);
    const gradOut = tensor(device, gradValues, [50, 4, 16], { dtype: 'f16' });
    const whole = await runPacked(prepared, problem, gradOut, packedRows);
    const split = await runPacked(prepared, problem, gradOut, packedRows, both(limit));
    // dK/dV: the matrix kernel whole; split, the padded q and dO copies exceed the limit and the tiled kernel runs.
    for (const name of ['out', 'logsumexp', 'dq'] as const) expectSameBits(name, split[name], whole[name], context);
    await expectCloseToReferences(whole, prepared, gradOut, gradValues, 'f16', context);
    await expectCloseToReferences(split, prepared, gradOut, gradValues, 'f16', context);
    for (const t of [gradOut, prepared.q, prepared.k, prepared.v]) t.dispose();
  }, 1_200_000); // lavapipe compiles this test's many chunked matrix and tiled kernels: past 600 s with a cold shader cache

  it('ran the matrix kernel in every case whose head dims fit it, in both forms, and the matrix dQ (runs after the cases)', () => {
    const fitting = cases.filter((kase) => {
      const { q, v } = kase.generate(1);
      return matrixFits(q.shape.at(-1)!, v.shape.at(-1)!);
    });
    expect(fitting.length).toBeGreaterThanOrEqual(15);
    expect(matrixCases).toBeGreaterThanOrEqual(fitting.length);
    expect(directCases).toBe(matrixCases);
    expect(varlenDirectCases).toBeGreaterThanOrEqual(1);
    const keys = gpu!.pipelines.keys();
    expect(keys.filter((key) => key.startsWith('flash-forward-matrix') && key.includes('DIRECT_KV')).length).toBeGreaterThan(0);
    expect(keys.filter((key) => key.startsWith('flash-forward-matrix') && !key.includes('DIRECT_KV')).length).toBeGreaterThan(0);
    expect(keys.some((key) => key.startsWith('padded-key-values'))).toBe(true);
    expect(keys.some((key) => key.startsWith('padded-key-values') && key.includes('varlen'))).toBe(true);
    // The backward after the direct form (every third case) took dQ and dK/dV on subgroup matrices too.
    expect(keys.some((key) => key.startsWith('flash-backward-query-matrix'))).toBe(true);
    expect(keys.some((key) => key.startsWith('flash-backward-key-value-matrix'))).toBe(true);
  });
});
