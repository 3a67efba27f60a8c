/**
 * Causal balance in the tiled backward (balanced-blocks.ts' tiledPairsBlocks): at compiled head dims up to 32 a
 * causal problem's tiled dQ and dK/dV kernels are compiled with PAIRED_BLOCKS and each workgroup takes a block and
 * its mirror. Pairing changes which workgroup computes a block, never how: the same problem split over keys by a
 * lowered binding limit runs the partial kernels (never paired) and must give the same bits.
 */
import { gpu } from '../test/test-device';
import { describeAttention, tensor } from '@webattn/tensor';
import { freshSeed, randomValues } from '@webattn/tensor/testing';
import { afterAll, describe, expect, it } from 'vitest';
import { expectCloseToReferences, expectSameBits, runRaw } from '../test/chunked-runs';
import { describeCase, prepare, type FlashCase } from '../test/flash-harness';
import { pairsMirroredBlocks, tiledPairsBlocks } from './balanced-blocks';
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

describe.skipIf(!gpu)('the tiled backward with paired blocks', { timeout: 600_000 }, () => {
  it('causal bottom-right, GQA 4/2, L300 S600 D16 (odd row-block count): the bits of the unpaired key-chunked run, both match the references', async () => {
    const device = gpu!;
    const seed = freshSeed();
    const [rows, keys] = [300, 600];
    const spec: FlashCase = {
      batch: 1,
      queryHeads: 4,
      kvHeads: 2,
      queryLength: rows,
      keyLength: keys,
      headDimQk: 16,
      options: { isCausal: true, causalAlignment: 'bottom-right' },
    };
    const prepared = prepare(device, spec, seed);
    const context = describeCase(spec, seed);
    const problem = describeAttention(prepared.q, prepared.k, prepared.v, { ...prepared.options, requiresGrad: true });
    expect(pairsMirroredBlocks(problem)).toBe(true);
    // One kv head's 600 keys of k take 38400 B: under 20000 the backward splits them at keys 256 and 512, so dQ and
    // dK/dV run their partial kernels (f32 sums continued in scratch: the unsplit summation order) over whole rows.
    const limit = 20000;
    const gradients = { gradOut: problem.layout.out, dq: problem.layout.q, dk: problem.layout.k, dv: problem.layout.v };
    const query = planKernelChunks(problem, backwardBindings(problem, gradients, true).query, limit);
    const wholeRowsSplitKeys = (chunks: readonly Chunk[]) => chunks.every((chunk) => chunk.rows.count === rows && [0, 256, 512].includes(chunk.keys.start));
    expect('chunks' in query && query.chunks.length === 12 && wholeRowsSplitKeys(query.chunks), context).toBe(true);
    const keyValue = planKeyValue(problem, gradients, true, limit);
    expect('partial' in keyValue && keyValue.partial.length === 6 && wholeRowsSplitKeys(keyValue.partial.flat()), context).toBe(true);

    const gradValues = randomValues(4 * rows * 16, seed + 3, -1, 1);
    const gradOut = tensor(device, gradValues, [1, 4, rows, 16]);
    const whole = await runRaw(prepared, problem, gradOut);
    const pipelines = [...device.pipelines.keys()];
    for (const kernel of ['flash-backward-query-tiled', 'flash-backward-key-value-tiled']) {
      expect(pipelines.some((key) => key.startsWith(kernel) && key.includes('PAIRED_BLOCKS')), `${kernel} paired: ${context}`).toBe(true);
    }
    const split = await runRaw(prepared, problem, gradOut, { backward: limit });
    for (const name of ['out', 'logsumexp', 'dq', 'dk', 'dv'] as const) expectSameBits(name, split[name], whole[name], context);
    await expectCloseToReferences(whole, prepared, gradOut, gradValues, 'f32', context);
    for (const t of [gradOut, prepared.q, prepared.k, prepared.v]) t.dispose();
  });
});
