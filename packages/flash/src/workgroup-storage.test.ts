/**
 * The workgroup storage each kernel's shape is planned with (flash-tiles.ts and the matrix kernels' files: whether a
 * shape fits the device's maxComputeWorkgroupStorageSize) against what its composed WGSL declares, counted as
 * WebGPU counts it: an estimate under the shader's own would let a shape through that the pipeline then refuses with
 * a raw validation error. No device needed: the kernels' code is composed and its declarations read.
 */
import { bhndLayout, type KernelSource } from '@webattn/tensor';
import { describe, expect, it } from 'vitest';
import { testProblem } from '../test/test-problem';
import { workgroupBytes } from '../test/workgroup-bytes';
import { forwardKernel } from './flash-forward';
import { gradientKernel, keyValueSourceFor, querySourceFor } from './flash-backward';
import { matrixKeyValueKernel, matrixKeyValueStorage } from './flash-backward-key-value-matrix';
import { matrixQueryKernel, matrixQueryStorage } from './flash-backward-query-matrix';
import { matrixStoredQueryKernel, matrixStoredQueryStorage } from './matrix-stored-scores';
import { variantOf } from './flash-kernels';
import {
  MATRIX_KEYS,
  MATRIX_ROW_BLOCKS,
  MATRIX_SUBGROUPS,
  chooseTiles,
  matrixForwardStorage,
  tiledForwardStorage,
  tiledKeyValueStorage,
  tiledQueryStorage,
  type FlashCaps,
  type FlashTiles,
} from './flash-tiles';
import { withEmulatedMatrices } from './subgroup-matrix-emulation';

// Room for every shape (the estimates are checked, not the fit).
const CAPS: FlashCaps = withEmulatedMatrices({
  shaderF16: true,
  maxComputeWorkgroupStorageSize: 1 << 20,
  maxComputeInvocationsPerWorkgroup: 1024,
  maxComputeWorkgroupsPerDimension: 65535,
  maxStorageBufferBindingSize: 2 ** 31,
  maxStorageBuffersPerShaderStage: 16,
});
// Only its identity matters to the kernel builders (whether the matrix builtins are emulated).
const GPU = {} as GPUDevice;
// (q·k, v) head dims: equal, unequal, and buckets that round up.
const HEAD_DIMS = [
  [16, 16],
  [32, 32],
  [64, 64],
  [128, 128],
  [24, 80],
] as const;
// The shader rounds each variable to 16 bytes; the estimates round nothing and add SHARED_EXTRA (176 bytes) or less
// for the small ones. Over by more than this, a shape that fits would be refused.
const SLACK = 256;

function tilesFor(dtype: 'f16' | 'f32', headDimQk: number, headDimV: number, directKeyValues: boolean): FlashTiles {
  const tiles = chooseTiles({ dtype, headDimQk, headDimV, directKeyValues }, CAPS);
  if (!tiles) throw new Error(`no tiles for ${dtype} ${headDimQk}/${headDimV}`);
  return tiles;
}

function problemFor(dtype: 'f16' | 'f32', headDimQk: number, headDimV: number) {
  return testProblem({
    batch: 1,
    queryHeads: 1,
    kvHeads: 1,
    queryLength: 64,
    keyLength: 64,
    headDimQk,
    headDimV,
    dtype,
    scale: 0.125,
    layout: { q: bhndLayout(1, 64, headDimQk), k: bhndLayout(1, 64, headDimQk), v: bhndLayout(1, 64, headDimV), out: bhndLayout(1, 64, headDimV) },
  });
}

/** `tight`: also not over by more than SLACK (false where the estimate knowingly counts an array the kernel drops). */
function expectEstimate(what: string, estimate: number, kernel: KernelSource, tight = true): void {
  const declared = workgroupBytes(kernel);
  expect(estimate, `${what}: estimate ${estimate} bytes, the shader declares ${declared}`).toBeGreaterThanOrEqual(declared);
  if (tight) expect(estimate - declared, `${what}: estimate ${estimate} bytes, the shader declares ${declared}`).toBeLessThanOrEqual(SLACK);
}

describe('workgroup storage estimates', () => {
  it('the matrix forward (direct and staged): every subgroups × row blocks × keys shape', () => {
    for (const [qk, v] of HEAD_DIMS) {
      for (const direct of [true, false]) {
        const tiles = tilesFor('f16', qk, v, direct);
        const problem = problemFor('f16', qk, v);
        for (const subgroups of MATRIX_SUBGROUPS) {
          for (const rowsPerThread of MATRIX_ROW_BLOCKS) {
            for (const keys of MATRIX_KEYS) {
              const forward = { kernel: 'matrix', threads: subgroups * 32, rowsPerThread, keys } as const;
              const kernel = forwardKernel(GPU, problem, { ...tiles, forward, directKeyValues: direct }, CAPS);
              expectEstimate(`matrix forward ${qk}/${v} ${JSON.stringify(forward)} direct=${direct}`, matrixForwardStorage(forward, qk, v, direct), kernel);
            }
          }
        }
      }
    }
  });

  it('the tiled forward, f32 and f16, its weights through workgroup memory or (over-counted) subgroup shuffles', () => {
    const withoutSubgroups: FlashCaps = { ...CAPS, subgroups: false };
    for (const dtype of ['f32', 'f16'] as const) {
      for (const [qk, v] of HEAD_DIMS) {
        const tiles = tilesFor(dtype, qk, v, false);
        const problem = problemFor(dtype, qk, v);
        for (const threads of [64, 128, 256]) {
          for (const rowsPerThread of [1, 2, 4]) {
            for (const keys of [16, 32, 64]) {
              const forward = { kernel: 'tiled', threads, rowsPerThread, keys } as const;
              const what = `tiled forward ${dtype} ${qk}/${v} ${JSON.stringify(forward)}`;
              const estimate = tiledForwardStorage(forward, qk, v);
              expectEstimate(what, estimate, forwardKernel(GPU, problem, { ...tiles, forward }, withoutSubgroups));
              expectEstimate(`${what}, shuffles`, estimate, forwardKernel(GPU, problem, { ...tiles, forward }, CAPS), false);
            }
          }
        }
      }
    }
  });

  it('the tiled dQ and dK/dV (stored scores, paired blocks), f32 and f16', () => {
    for (const dtype of ['f32', 'f16'] as const) {
      for (const [qk, v] of HEAD_DIMS) {
        const tiles = tilesFor(dtype, qk, v, false);
        const variant = variantOf(problemFor(dtype, qk, v));
        for (const threads of [64, 128, 256]) {
          for (const rowsPerThread of [1, 2, 4]) {
            for (const keyThreads of [4, 8]) {
              const shape = { threads, rowsPerThread, keyThreads };
              const query = gradientKernel('flash-backward-query', querySourceFor, false, variant, tiles, shape, {}, new Set());
              expectEstimate(`tiled dQ ${dtype} ${qk}/${v} ${JSON.stringify(shape)}`, tiledQueryStorage(shape, qk, v), query.source);
              for (const [paired, storedRows] of [
                [false, 0],
                [true, 64],
              ] as const) {
                const keyValue = gradientKernel('flash-backward-key-value', keyValueSourceFor, false, variant, tiles, shape, {}, new Set(), paired, storedRows);
                expectEstimate(`tiled dK/dV ${dtype} ${qk}/${v} ${JSON.stringify(shape)} paired=${paired}`, tiledKeyValueStorage(shape, qk, v), keyValue.source);
              }
            }
          }
        }
      }
    }
  });

  it('the matrix dK/dV, the recomputing matrix dQ and the stored-score matrix dQ: every subgroups × tile shape', () => {
    for (const [qk, v] of HEAD_DIMS) {
      const tiles = tilesFor('f16', qk, v, true);
      const variant = variantOf(problemFor('f16', qk, v));
      for (const subgroups of [1, 2, 4, 8]) {
        for (const size of [16, 32, 64]) {
          const keyValue = { subgroups, rows: size };
          for (const storesScores of [false, true]) {
            const kernel = matrixKeyValueKernel(GPU, variant, tiles, keyValue, { dk: false, dv: true }, storesScores);
            expectEstimate(`matrix dK/dV ${qk}/${v} ${JSON.stringify(keyValue)}`, matrixKeyValueStorage(keyValue, tiles.headDimQk, tiles.headDimV), kernel);
          }
          const query = { subgroups, keys: size };
          const kernel = matrixQueryKernel(GPU, variant, tiles, query, { q: true, gradOut: false, dq: true });
          expectEstimate(`matrix dQ ${qk}/${v} ${JSON.stringify(query)}`, matrixQueryStorage(query, tiles.headDimQk, tiles.headDimV), kernel);
        }
        const stored = matrixStoredQueryKernel(GPU, variant, tiles, { subgroups }, true);
        expectEstimate(`stored-score matrix dQ ${qk}/${v} subgroups ${subgroups}`, matrixStoredQueryStorage({ subgroups }, tiles.headDimQk), stored);
      }
    }
  });
});
