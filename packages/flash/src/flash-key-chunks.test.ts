/**
 * Problems whose keys of one kv head, or whose logsumexp and delta, exceed one storage binding. A lowered binding
 * limit (FlashRecordOptions.maxStorageBindingSize) forces key chunks and per-chunk logsumexp bindings on small
 * problems on lavapipe:
 * - backward over key chunks (dQ and dK/dV continue f32 sums in the unsplit order): the unsplit bits;
 * - forward over key chunks (split-KV): the bits of split-KV over all keys at once, and the float64 reference
 *   within the same-precision tolerance;
 * - logsumexp (with its rounding residuals) and delta bound per chunk of rows: the unsplit bits.
 * One real case exceeds lavapipe's 128 MiB with the keys of one head.
 */
import { gpu } from '../test/test-device';
import { attentionReference, attentionReferenceBackward } from '@webattn/reference';
import { describeAttention, full, tensor, type AttentionProblem } from '@webattn/tensor';
import { expectNoGpuErrors, freshSeed, randomValues, relativeL2 } from '@webattn/tensor/testing';
import { afterAll, describe, expect, it } from 'vitest';
import { both, expectCloseToReferences, expectSameBits, preparePacked, runPacked, runRaw, runSplitKv, type Outputs } from '../test/chunked-runs';
import { describeCase, poisonPool, prepare, type FlashCase } from '../test/flash-harness';
import { flashAttention, flashAttentionGrad } from './flash-attention';
import { backwardBindings, forwardBindings, planKernelChunks, planKeyValue } from './flash-chunks';
import { forwardTuningKey, tunedForwardTilesOf, type ForwardTiles } from './flash-tiles';
import { deltaMode, logsumexpMode } from './row-stats';
import { splitKvKernelsOf } from './split-kv-record';

afterAll(() => gpu?.destroy());

/** Bool mask [B, 1, L, S] (broadcast over heads), about a fifth of the pairs removed. */
function boolMask(batch: number, rows: number, keys: number, seed: number): number[] {
  const noise = randomValues(batch * rows * keys, seed, 0, 1);
  return Array.from(noise, (x) => (x < 0.2 ? 0 : 1));
}

const gradientsOf = (problem: AttentionProblem) => ({ gradOut: problem.layout.out, dq: problem.layout.q, dk: problem.layout.k, dv: problem.layout.v });

const NAMES = ['out', 'logsumexp', 'dq', 'dk', 'dv'] as const;

function expectAllSameBits(split: Outputs, whole: Outputs, names: readonly (typeof NAMES)[number][], context: string): void {
  for (const name of names) expectSameBits(name, split[name], whole[name], context);
}

const BIG_KEYS = { keys: 540_000, period: 96, rows: 2, dim: 64 } as const;
const BIG_KEYS_BYTES = BIG_KEYS.keys * BIG_KEYS.dim * 4;
const BIG_KEYS_EXCEED_BINDING =
  gpu !== null && BIG_KEYS_BYTES > gpu.caps.maxStorageBufferBindingSize && BIG_KEYS_BYTES <= gpu.gpu.limits.maxBufferSize;

// Cold shader compiles of the variants (split-KV with dropout, dQ over key chunks) take minutes on a loaded
// lavapipe, seconds once Mesa's shader cache has them.
describe.skipIf(!gpu)('flash splits the keys of one kv head, and the logsumexp, over chunks', { timeout: 300_000 }, () => {
  for (const dtype of ['f32', 'f16'] as const) {
    it(`${dtype} GQA 4/2, 600 keys over the limit, bool mask over heads, key lengths, causal bottom-right, dropout`, async () => {
      const device = gpu!;
      if (dtype === 'f16' && !device.caps.shaderF16) return;
      const seed = freshSeed();
      // Key lengths 600 and 430 (padding starts inside the second key chunk); bottom-right causal rows see keys up
      // to i + 563, so most rows cross the chunk boundaries at 256 and 512 (backward) and 300 (split-KV).
      const spec: FlashCase = {
        batch: 2,
        queryHeads: 4,
        kvHeads: 2,
        queryLength: 37,
        keyLength: 600,
        headDimQk: 40,
        dtype,
        mask: { shape: [2, 1, 37, 600], dtype: 'bool', data: boolMask(2, 37, 600, seed + 7) },
        options: { isCausal: true, causalAlignment: 'bottom-right', dropoutP: 0.2, dropoutSeed: seed, dropoutOffset: 3, keyLengths: [600, 430] },
      };
      const prepared = prepare(device, spec, seed);
      const context = describeCase(spec, seed);
      const problem = describeAttention(prepared.q, prepared.k, prepared.v, { ...prepared.options, requiresGrad: true });
      // One kv head's keys (600 · 40 elements: 96000 B in f32) do not fit, 300 or 256 of them do.
      const limit = dtype === 'f32' ? 60000 : 30000;
      expect('overflow' in planKernelChunks(problem, forwardBindings(problem, true), limit), context).toBe(true);
      const splitKv = planKernelChunks(problem, splitKvKernelsOf(problem, device.caps, true).plan, limit);
      expect('chunks' in splitKv && splitKv.chunks.slice(0, 2).map((c) => [c.heads.count, c.rows.count, c.keys.start, c.keys.count]), context).toEqual([
        [1, 37, 0, 300],
        [1, 37, 300, 300],
      ]);
      const kernels = backwardBindings(problem, gradientsOf(problem), true);
      const query = planKernelChunks(problem, kernels.query, limit);
      expect('chunks' in query && query.chunks.slice(0, 3).map((c) => [c.heads.count, c.rows.count, c.keys.start, c.keys.count]), context).toEqual([
        [1, 37, 0, 256],
        [1, 37, 256, 256],
        [1, 37, 512, 88],
      ]);
      const keyValue = planKeyValue(problem, gradientsOf(problem), true, limit);
      expect('direct' in keyValue && keyValue.direct.map((c) => [c.batch.start, c.heads.start, c.keys.start]), context).toEqual([
        [0, 0, 0],
        [0, 0, 256],
        [0, 0, 512],
        [0, 1, 0],
        [0, 1, 256],
        [0, 1, 512],
        [1, 0, 0],
        [1, 0, 256],
        [1, 0, 512],
        [1, 1, 0],
        [1, 1, 256],
        [1, 1, 512],
      ]);
      const gradValues = randomValues(2 * 4 * 37 * 40, seed + 3, -1, 1);
      const gradOut = tensor(device, gradValues, [2, 4, 37, 40], { dtype });
      const whole = await runRaw(prepared, problem, gradOut);
      // The same forward, the backward over key chunks: the unsplit bits.
      const keysBackward = await runRaw(prepared, problem, gradOut, { backward: limit });
      expectAllSameBits(keysBackward, whole, NAMES, context);
      // The forward over key chunks (split-KV): the bits of split-KV over all keys, and the references.
      const keysForward = await runRaw(prepared, problem, gradOut, both(limit));
      expectAllSameBits(keysForward, await runSplitKv(prepared, problem), ['out', 'logsumexp'], context);
      await expectCloseToReferences(keysForward, prepared, gradOut, gradValues, dtype, context);
      for (const t of [gradOut, prepared.q, prepared.k, prepared.v]) t.dispose();
      prepared.attnMask?.dispose();
    });
  }

  it('packed varlen with a 600-key sequence over the limit (GQA 4/2, causal bottom-right, dropout): split-KV forward within tolerance, backward key chunks give the unsplit bits', async () => {
    const device = gpu!;
    const seed = freshSeed();
    // Query lengths 3, 37, 20; key lengths 5, 600, 20: only the second sequence's keys need chunks.
    const { prepared, problem, packedRows, context } = preparePacked(device, seed, [0, 3, 40, 60], [0, 5, 605, 625]);
    // 600 keys of one kv head in [total, 2, 40] memory span 599 · 80 + 40 elements (191840 B); 300 of them fit.
    const limit = 100000;
    const splitKv = planKernelChunks(problem, splitKvKernelsOf(problem, device.caps, true, packedRows).plan, limit);
    expect('chunks' in splitKv && splitKv.chunks.filter((c) => c.batch.start === 1 && c.heads.start === 0).map((c) => [c.keys.start, c.keys.count]), context).toEqual([
      [0, 300],
      [300, 300],
    ]);
    const query = planKernelChunks(problem, backwardBindings(problem, gradientsOf(problem), true, packedRows).query, limit);
    expect('chunks' in query && query.chunks.filter((c) => c.batch.start === 1 && c.heads.start === 0).map((c) => [c.keys.start, c.keys.count]), context).toEqual([
      [0, 256],
      [256, 256],
      [512, 88],
    ]);
    const gradValues = randomValues(60 * 4 * 40, seed + 3, -1, 1);
    const gradOut = tensor(device, gradValues, [60, 4, 40]);
    const whole = await runPacked(prepared, problem, gradOut, packedRows);
    expectAllSameBits(await runPacked(prepared, problem, gradOut, packedRows, { backward: limit }), whole, NAMES, context);
    await expectCloseToReferences(await runPacked(prepared, problem, gradOut, packedRows, both(limit)), prepared, gradOut, gradValues, 'f32', context);
    for (const t of [gradOut, prepared.q, prepared.k, prepared.v]) t.dispose();
  });

  it('logsumexp and delta over the limit: bound per chunk of rows (staged with the residual, windows without), the unsplit bits', async () => {
    const device = gpu!;
    const seed = freshSeed();
    const spec: FlashCase = { batch: 1, queryHeads: 2, kvHeads: 1, queryLength: 600, keyLength: 45, headDimQk: 4, options: { isCausal: true } };
    const prepared = prepare(device, spec, seed);
    const context = describeCase(spec, seed);
    const problem = describeAttention(prepared.q, prepared.k, prepared.v, { ...prepared.options, requiresGrad: true });
    // 1200 rows: 9600 B of logsumexp with residuals, 4800 B without (and of delta); 256 rows of q take 4096 B.
    const limit = 4500;
    expect([logsumexpMode(problem, true, limit), logsumexpMode(problem, false, limit), deltaMode(problem, limit)], context).toEqual(['staged', 'window', 'window']);
    const plan = planKernelChunks(problem, forwardBindings(problem, true), limit);
    expect('chunks' in plan && plan.chunks.map((c) => [c.heads.start, c.rows.start, c.rows.count]), context).toEqual([
      [0, 0, 256],
      [0, 256, 256],
      [0, 512, 88],
      [1, 0, 256],
      [1, 256, 256],
      [1, 512, 88],
    ]);
    expect('partial' in planKeyValue(problem, gradientsOf(problem), true, limit), context).toBe(true);
    const gradValues = randomValues(2 * 600 * 4, seed + 3, -1, 1);
    const gradOut = tensor(device, gradValues, [1, 2, 600, 4]);
    // Both forward kernels: the default one and the compact one (chosen through the tuning table).
    const tuningKey = forwardTuningKey('f32', 4, 4);
    const compact: ForwardTiles = { kernel: 'compact', threads: 64, rowsPerThread: 4, keys: 16 };
    try {
      for (const forward of ['default', 'compact'] as const) {
        if (forward === 'compact') tunedForwardTilesOf(device.gpu).set(tuningKey, compact);
        for (const residual of [true, false]) {
          const run = `${forward} forward, residual ${residual}, ${context}`;
          const whole = await runRaw(prepared, problem, gradOut, {}, residual);
          const split = await runRaw(prepared, problem, gradOut, both(limit), residual);
          expectAllSameBits(split, whole, NAMES, run);
          await expectCloseToReferences(split, prepared, gradOut, gradValues, 'f32', run);
        }
      }
    } finally {
      tunedForwardTilesOf(device.gpu).delete(tuningKey);
    }
    for (const t of [gradOut, prepared.q, prepared.k, prepared.v]) t.dispose();
  });

  // Keys and values repeat every `period` keys, so the attention equals one period's: out and dq as over one
  // period, logsumexp + log(repeats), and dk, dv of key j one period's dk, dv of key j mod period / repeats.
  it.skipIf(!BIG_KEYS_EXCEED_BINDING)('runs keys of one head over a 128 MiB binding (138 MB) forward and backward through the tensor API', async () => {
    const device = gpu!;
    const { keys, period, rows, dim } = BIG_KEYS;
    const repeats = keys / period;
    const seed = freshSeed();
    const periodic = (values: Float32Array) => {
      const all = new Float32Array(keys * dim);
      for (let start = 0; start < keys; start += period) all.set(values, start * dim);
      return all;
    };
    const qValues = randomValues(rows * dim, seed);
    const kPeriod = randomValues(period * dim, seed + 1);
    const vPeriod = randomValues(period * dim, seed + 2);
    const gradValues = randomValues(rows * dim, seed + 3, -1, 1);
    const q = tensor(device, qValues, [1, 1, rows, dim]);
    const k = tensor(device, periodic(kPeriod), [1, 1, keys, dim]);
    const v = tensor(device, periodic(vPeriod), [1, 1, keys, dim]);
    const gradOut = tensor(device, gradValues, [1, 1, rows, dim]);
    // NaN buffers in the pool for out and dq, dk and dv (the forward's outputs are small: the large ones wait).
    await poisonPool(device, [rows * dim, rows * dim]);
    for (let n = 0; n < 2; n++) full(device, [keys * dim], Number.NaN).dispose();
    const { out, logsumexp } = await expectNoGpuErrors(device, () => flashAttention(q, k, v));
        const { dq, dk, dv } = await expectNoGpuErrors(device, () => flashAttentionGrad(q, k, v, out, logsumexp, gradOut));
        const host = (data: Float32Array, n: number) => ({ data, shape: [1, 1, n, dim] });
    const inputs = [host(qValues, rows), host(kPeriod, period), host(vPeriod, period)] as const;
    const exact = attentionReference(...inputs);
    const exactGrad = attentionReferenceBackward(...inputs, host(gradValues, rows));
    const context = `seed ${seed}`;
    // f32 sums over 540000 keys (split-KV: 1055 splits of 512) against float64 over one period.
    const expectClose = (name: string, actual: Float32Array, expected: ArrayLike<number>, bound: number) => {
      expect(actual.some(Number.isNaN), `NaN left in ${name}: ${context}`).toBe(false);
      const error = relativeL2(actual, Float64Array.from(expected));
      expect(error, `${name} relative L2 error ${error}: ${context}`).toBeLessThan(bound);
    };
    expectClose('out', (await out.toArray()) as Float32Array, exact.out, 1e-4);
    expectClose('logsumexp', (await logsumexp.toArray()) as Float32Array, Array.from(exact.logsumexp, (x) => x + Math.log(repeats)), 1e-5);
    expectClose('dq', (await dq.toArray()) as Float32Array, exactGrad.dq, 1e-3);
    // Keys at both ends of each key chunk of the backward (270080 keys) and of each split (512), and random ones.
    const sampled = [0, 1, 255, 256, 511, 512, 270079, 270080, 270081, keys - 2, keys - 1, ...Array.from(randomValues(16, seed + 4, 0, keys), Math.floor)];
    for (const [name, gradient, expected] of [
      ['dk', dk, exactGrad.dk],
      ['dv', dv, exactGrad.dv],
    ] as const) {
      const values = (await gradient.toArray()) as Float32Array;
      expect(values.some(Number.isNaN), `NaN left in ${name}: ${context}`).toBe(false);
      const actual = new Float32Array(sampled.length * dim);
      const reference = new Float64Array(sampled.length * dim);
      sampled.forEach((key, index) => {
        actual.set(values.subarray(key * dim, (key + 1) * dim), index * dim);
        const at = key % period;
        for (let d = 0; d < dim; d++) reference[index * dim + d] = expected[at * dim + d]! / repeats;
      });
      const error = relativeL2(actual, reference);
      expect(error, `${name} relative L2 error ${error} on keys ${sampled.join(',')}: ${context}`).toBeLessThan(1e-3);
    }
    for (const t of [q, k, v, gradOut, out, logsumexp, dq, dk, dv]) t.dispose();
  });
});
