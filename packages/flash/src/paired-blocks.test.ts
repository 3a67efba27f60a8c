/**
 * Causal balance in the tiled backward (balanced-blocks.ts' tiledPairsBlocks): at compiled head dims up to 32 a
 * causal problem's tiled dQ and dK/dV kernels are compiled with PAIRED_BLOCKS and each workgroup takes a block and
 * its mirror. Pairing changes which workgroup computes a block, never how: the same problem split over keys by a
 * lowered binding limit (its partial kernels never pair; a direct dK/dV per key chunk pairs within the chunk) must
 * give the same bits.
 */
import { gpu } from '../test/test-device';
import { describeAttention, tensor } from '@webattn/tensor';
import { freshSeed, randomValues } from '@webattn/tensor/testing';
import { afterAll, describe, expect, it } from 'vitest';
import { expectCloseToReferences, expectSameBits, runRaw } from '../test/chunked-runs';
import { describeCase, prepare, type FlashCase } from '../test/flash-harness';
import { heaviestKeysFirst, tiledPairsBlocks } from './balanced-blocks';
import type { Chunk } from './binding-chunks';
import { backwardBindings, planKernelChunks, planKeyValue } from './flash-chunks';

afterAll(() => gpu?.destroy());

describe('tiledPairsBlocks', () => {
  const causal = { causal: true, window: null };
  it('pairs causal and one-sided windows at compiled head dims up to 32 only', () => {
    expect(tiledPairsBlocks(causal, 16, 16)).toBe(true);
    expect(tiledPairsBlocks(causal, 32, 24)).toBe(true);
    expect(tiledPairsBlocks(causal, 32, 64)).toBe(false);
    expect(tiledPairsBlocks(causal, 64, 64)).toBe(false);
    expect(tiledPairsBlocks({ causal: false, window: { left: 8, right: -1 } }, 16, 16)).toBe(true);
    expect(tiledPairsBlocks({ causal: false, window: { left: 8, right: 8 } }, 16, 16)).toBe(false);
    expect(tiledPairsBlocks({ causal: false, window: null }, 16, 16)).toBe(false);
  });
});

describe('heaviestKeysFirst', () => {
  it('orders the matrix dK/dV heaviest first under every banded mask, and only there', () => {
    expect(heaviestKeysFirst({ causal: true, window: null })).toBe(true);
    expect(heaviestKeysFirst({ causal: false, window: { left: 8, right: -1 } })).toBe(true);
    expect(heaviestKeysFirst({ causal: false, window: { left: -1, right: 0 } })).toBe(true);
    expect(heaviestKeysFirst({ causal: false, window: { left: 8, right: 8 } })).toBe(true);
    expect(heaviestKeysFirst({ causal: false, window: { left: -1, right: -1 } })).toBe(false);
    expect(heaviestKeysFirst({ causal: false, window: null })).toBe(false);
  });
});

/** A case, its binding limit (splitting k at keys 256 and 512, every row whole) and the name of its test. */
const PAIRED_CASES: { readonly name: string; readonly spec: FlashCase; readonly limit: number }[] = [
  {
    // One kv head's 600 keys of k take 38400 B in f32: under 20000 B they split.
    name: 'f32, causal bottom-right, GQA 4/2, L300 S600 D16 (an odd count of row blocks)',
    spec: { batch: 1, queryHeads: 4, kvHeads: 2, queryLength: 300, keyLength: 600, headDimQk: 16, options: { isCausal: true, causalAlignment: 'bottom-right' } },
    limit: 20000,
  },
  {
    // A window open on the left only pairs too (earlier key blocks the heavier ones); 19200 B of f16 keys per head.
    name: 'f16, window [100, -1] (left only), L300 S600 D32 (the tiled path of devices without subgroup matrices)',
    spec: { batch: 2, queryHeads: 2, queryLength: 300, keyLength: 600, headDimQk: 32, dtype: 'f16', options: { window: [100, -1] } },
    limit: 20000,
  },
];

describe.skipIf(!gpu)('the tiled backward with paired blocks', { timeout: 600_000 }, () => {
  for (const { name, spec, limit } of PAIRED_CASES) {
    it(`${name}: the bits of the key-chunked run (paired otherwise or not at all), and the references`, async () => {
      const device = gpu!;
      const seed = freshSeed();
      const { queryLength: rows, queryHeads, batch, headDimQk: dims } = spec;
      const dtype = spec.dtype ?? 'f32';
      const prepared = prepare(device, spec, seed);
      const context = describeCase(spec, seed);
      const problem = describeAttention(prepared.q, prepared.k, prepared.v, { ...prepared.options, requiresGrad: true });
      expect(tiledPairsBlocks(problem, dims, dims), context).toBe(true);
      // Under the limit the backward splits the keys at 256 and 512 (row chunks, where any, of whole 64-row tiles:
      // the unsplit bits). dQ then runs its partial kernel (f32 sums continued in scratch, never paired); dK/dV its
      // partial kernel too (f32) or, where its query rows fit (f16), the direct one per key chunk, pairing the
      // chunk's blocks among themselves instead of the whole key range's.
      const gradients = { gradOut: problem.layout.out, dq: problem.layout.q, dk: problem.layout.k, dv: problem.layout.v };
      const splitKeys = (chunks: readonly Chunk[]) =>
        chunks.some((chunk) => chunk.keys.start === 512) &&
        chunks.every((chunk) => [0, 256, 512].includes(chunk.keys.start) && chunk.rows.start % 64 === 0 && (chunk.rows.count % 64 === 0 || chunk.rows.start + chunk.rows.count === rows));
      const query = planKernelChunks(problem, backwardBindings(problem, gradients, true).query, limit);
      expect('chunks' in query && splitKeys(query.chunks), context).toBe(true);
      const keyValue = planKeyValue(problem, gradients, true, limit);
      const keyValueChunks = 'partial' in keyValue ? keyValue.partial.flat() : 'direct' in keyValue ? keyValue.direct : [];
      expect(splitKeys(keyValueChunks), context).toBe(true);

      const gradValues = randomValues(batch * queryHeads * rows * dims, seed + 3, -1, 1);
      const gradOut = tensor(device, gradValues, [batch, queryHeads, rows, dims], { dtype });
      const whole = await runRaw(prepared, problem, gradOut);
      const pipelines = [...device.pipelines.keys()];
      for (const kernel of ['flash-backward-query-tiled', 'flash-backward-key-value-tiled']) {
        const paired = pipelines.some((key) => key.startsWith(`${kernel}#${dtype}|qk${dims}|`) && key.includes('PAIRED_BLOCKS'));
        expect(paired, `${kernel} paired: ${context}`).toBe(true);
      }
      const split = await runRaw(prepared, problem, gradOut, { backward: limit });
      for (const output of ['out', 'logsumexp', 'dq', 'dk', 'dv'] as const) expectSameBits(output, split[output], whole[output], context);
      await expectCloseToReferences(whole, prepared, gradOut, gradValues, dtype, context);
      for (const t of [gradOut, prepared.q, prepared.k, prepared.v]) t.dispose();
    });
  }
});
