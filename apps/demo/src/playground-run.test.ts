/**
 * The playground's logic on real WebGPU (Dawn in Node), without a browser: every mask kind, both causal
 * alignments with L ≠ S, a window, dropout and f16 must run, agree with the float64 reference by the project's
 * tolerance rule, and give a heatmap whose masked cells hold no weight. The browser test covers the page itself.
 */
import { expectNoGpuErrors, freshSeed, openTestDevice } from '@webattn/tensor/testing';
import { afterAll, describe, expect, it } from 'vitest';
import { DEFAULT_PLAYGROUND, type PlaygroundConfig } from './playground-config';
import { runPlayground } from './playground-run';

const gpu = await openTestDevice();

const small: PlaygroundConfig = {
  ...DEFAULT_PLAYGROUND,
  batch: 2,
  heads: 2,
  queryLength: 17,
  keyLength: 23,
  headDim: 40,
  causal: false,
  mask: 'none',
  repeats: 1,
  heatmapBatch: 1,
  heatmapHead: 1,
};

const cases: readonly (readonly [string, Partial<PlaygroundConfig>])[] = [
  ['no mask', {}],
  ['key padding, causal top-left', { mask: 'key-padding', causal: true }],
  ['bool mask, causal bottom-right', { mask: 'bool', causal: true, alignment: 'bottom-right' }],
  ['additive mask, window (4, 2) bottom-right', { mask: 'additive', window: [4, 2], alignment: 'bottom-right' }],
  ['key padding with dropout 0.2', { mask: 'key-padding', dropoutP: 0.2 }],
  ['f16, bool mask, causal', { dtype: 'f16', mask: 'bool', causal: true }],
];

describe.skipIf(!gpu)('runPlayground on WebGPU', () => {
  afterAll(() => gpu?.destroy());

  it.each(cases)('%s: matches the float64 reference; masked cells of the heatmap hold no weight', async (_name, change) => {
    const config: PlaygroundConfig = { ...small, ...change, seed: freshSeed() };
    const context = `seed ${config.seed} (replay with WEBATTN_SEED=${config.seed})`;
    const result = await expectNoGpuErrors(gpu!, () => runPlayground(gpu!, config));
    expect(result.failure, context).toBeNull();
    expect(result.ran?.backend, context).toBe(result.explanation?.chosen);
    expect(result.explanation?.backends.map((report) => report.name)).toEqual(['flash', 'efficient', 'math', 'cpu']);
    expect(result.explanation?.backends.find((report) => report.name === 'cpu')?.eligible).toBe(false);
    expect(result.check, context).not.toBeNull();
    expect(result.check!.error, `${context}: tolerance ${result.check!.tolerance}`).toBeLessThanOrEqual(result.check!.tolerance);
    const heatmap = result.heatmap!;
    expect(heatmap, `${context}: ${result.heatmapSkipped}`).not.toBeNull();
    expect([heatmap.batch, heatmap.head, heatmap.rows, heatmap.columns]).toEqual([1, 1, config.queryLength, config.keyLength]);
    const rowSums = new Array<number>(heatmap.rows).fill(0);
    let masked = 0;
    for (let i = 0; i < heatmap.rows; i++) {
      for (let j = 0; j < heatmap.columns; j++) {
        const cell = i * heatmap.columns + j;
        if (heatmap.allowed[cell]) rowSums[i]! += heatmap.weights[cell]!;
        else {
          masked++;
          expect(heatmap.weights[cell], `${context}: masked cell (${i}, ${j})`).toBe(0);
        }
      }
    }
    // Causal, a window and a 25 % bool mask always remove cells; nothing at all removes none (key lengths may be S).
    if (config.causal || config.window !== null || config.mask === 'bool') expect(masked, context).toBeGreaterThan(0);
    if (!config.causal && config.window === null && (config.mask === 'none' || config.mask === 'additive')) expect(masked, context).toBe(0);
    if (config.dropoutP === 0) {
      // Rows with an allowed key sum to 1 (f16 weights are rounded); fully masked rows are 0, never NaN.
      for (const [i, sum] of rowSums.entries()) {
        const anyAllowed = heatmap.allowed.subarray(i * heatmap.columns, (i + 1) * heatmap.columns).some((value) => value === 1);
        expect(sum, `${context}: row ${i}`).toBeCloseTo(anyAllowed ? 1 : 0, config.dtype === 'f16' ? 2 : 5);
      }
    }
  });

  it('refuses inputs too large to draw in JavaScript, saying which sizes', async () => {
    const result = await runPlayground(gpu!, { ...small, batch: 16, heads: 32, queryLength: 4096, keyLength: 4096, headDim: 256 });
    expect(result.failure).toMatch(/B·H·max\(L, S\)·D = 536,870,912 elements/);
    expect(result.explanation).toBeNull();
  });

  it('a forced backend that cannot run reports every reason instead of throwing', async () => {
    const result = await runPlayground(gpu!, { ...small, backend: 'cpu' });
    expect(result.failure).toMatch(/cpu/);
    expect(result.check).toBeNull();
    expect(result.explanation?.chosen).toBeNull();
  });
});
