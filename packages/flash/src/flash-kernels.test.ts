/**
 * Every variant of every flash kernel compiles (f32/f16 × mask kind × key lengths × varlen × dropout), not only
 * those the feature tests happen to run; and pipeline keys carry setup-time facts only, never shapes.
 */
import { gpu } from '../test/test-device';
import { afterAll, describe, expect, it } from 'vitest';
import { flashKernel, type FlashVariant, type KernelExtras } from './flash-kernels';
import { chooseTiles } from './flash-tiles';
import forwardSource from './flash-forward.wgsl?raw';
import tiledForwardSource from './flash-forward-tiled.wgsl?raw';
import deltaSource from './flash-backward-delta.wgsl?raw';
import finishSource from './flash-backward-finish.wgsl?raw';
import queryFinishSource from './flash-backward-query-finish.wgsl?raw';
import { keyValueSourceFor, querySourceFor } from './flash-backward';
import partialSource from './split-kv-partial.wgsl?raw';
import combineSource from './split-kv-combine.wgsl?raw';

afterAll(() => gpu?.destroy());

const KERNELS = {
  forwardSource,
  tiledForwardSource,
  tiledKeyValueSource: keyValueSourceFor(false, true),
  tiledKeyValuePartialSource: keyValueSourceFor(true, true),
  tiledQuerySource: querySourceFor(false, true),
  tiledQueryPartialSource: querySourceFor(true, true),
  deltaSource,
  keyValueSource: keyValueSourceFor(false),
  keyValuePartialSource: keyValueSourceFor(true),
  finishSource,
  querySource: querySourceFor(false),
  queryPartialSource: querySourceFor(true),
  queryFinishSource,
  partialSource,
  combineSource,
};

function* variants(f16Available: boolean): Generator<FlashVariant> {
  for (const f16 of f16Available ? [false, true] : [false]) {
    for (const mask of ['none', 'bool', 'f32', 'f16'] as const) {
      for (const keyLengths of [false, true]) {
        for (const varlen of [false, true]) {
          for (const dropout of [false, true]) yield { f16, mask, keyLengths, varlen, dropout };
        }
      }
    }
  }
}

describe.skipIf(!gpu)('flash kernel variants', () => {
  it('all compile without errors', async () => {
    const device = gpu!;
    const tiles = chooseTiles({ headDimQk: 40, headDimV: 100 }, device.caps)!;
    const failures: string[] = [];
    // The tiled kernels' per-thread tile loads (any counts compile); rows read as vec4 or element-wise; the
    // tiled forward's weights through subgroup shuffles where the device has subgroups; the tiled backward's blocks
    // in mirrored pairs (balanced-blocks.ts).
    const sizes = { K_LOADS: 3, V_LOADS: 2, Q_LOADS: 2, G_LOADS: 3 };
    const vec4 = new Set(['q', 'k', 'v', 'grad_out']);
    const shuffled = { flags: { SHUFFLE_P: true }, directives: ['enable subgroups;', 'diagnostic(off, subgroup_uniformity);'] };
    for (const variant of variants(device.caps.shaderF16)) {
      for (const [name, source] of Object.entries(KERNELS)) {
        const forms: KernelExtras[] = [{ sizes }, { sizes, vec4Rows: vec4 }];
        if (name === 'tiledForwardSource' && device.caps.subgroups) forms.push({ sizes, ...shuffled });
        if (name === 'tiledQuerySource' || name === 'tiledKeyValueSource') forms.push({ sizes, flags: { PAIRED_BLOCKS: true } });
        for (const extras of forms) {
          const kernel = flashKernel(name, source, variant, tiles, {}, { keyThreads: 4 }, extras);
          const module = device.gpu.createShaderModule({ code: kernel.code(), label: kernel.variant });
          const info = await module.getCompilationInfo();
          const errors = info.messages.filter((message) => message.type === 'error');
          if (errors.length > 0) failures.push(`${name} ${kernel.variant}: ${errors.map((e) => `${e.lineNum}: ${e.message}`).join('; ')}`);
        }
      }
    }
    expect(failures).toEqual([]);
  });

  it('keys pipelines by dtype, head-dim bucket, features and tiles only', () => {
    const tiles = { headDimQk: 64, headDimV: 64, rows: 64, keys: 32, forward: { kernel: 'compact' as const, threads: 64, rowsPerThread: 2, keys: 32 }, directKeyValues: false, tiledQuery: null, tiledKeyValue: null, matrixQuery: null, matrixKeyValue: null, forwardThreads: 64, forwardRowsPerThread: 2, forwardKeys: 32, backwardKeys: 64, backwardRows: 16 };
    const kernel = flashKernel('flash-forward', forwardSource, { f16: true, mask: 'bool', keyLengths: true, varlen: false, dropout: true }, tiles, { THREADS: 64, BLOCK_N: 32 });
    expect(kernel.variant).toBe('f16|qk64|v64|mask=bool|key-lengths|dropout|THREADS=64|BLOCK_N=32|ROWS=2');
  });
});
