import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  chooseTiles,
  matrixBackwardShapes,
  restoreFlashBackwardTuning,
  restoreFlashTuning,
  tunedForwardTiles,
  type BackwardTuning,
  type FlashCaps,
  type ForwardTuning,
  type MatrixBackwardShapes,
  type TunedBackwardShapes,
} from '@webattn/flash';
import { cpuDevice } from '@webattn/tensor';
import { expectNoGpuErrors, openTestDevice } from '@webattn/tensor/testing';
import { afterAll, describe, expect, it } from 'vitest';
import { kernelCommand } from '../commands/kernel';
import { parseKernelArgs } from './kernel-args';
import { formatBackwardTunings, formatRecord, formatTiles, formatTunings } from './kernel-table';
import { setForwardTiles } from './kernel-tuning';
import { BACKWARD_FLOP_FACTOR, forwardFlops, parseOptionSet } from './option-sets';
import { flashTileReports, runKernelBench, type KernelRecord } from './run-kernel-bench';

const gpu = await openTestDevice();
afterAll(() => gpu?.destroy());

/** Structure and sanity of one record; no speed is asserted. */
function expectWellFormed(record: KernelRecord): void {
  const label = `${record.backend} ${record.pass} ${record.option}`;
  const expectedFlops = forwardFlops(record.shape, parseOptionSet(record.option)) * (record.pass === 'backward' ? BACKWARD_FLOP_FACTOR : 1);
  expect(record.flops, label).toBe(expectedFlops);
  if (record.status === 'ok') {
    expect(Number.isFinite(record.ms) && record.ms! > 0, `${label}: ms ${record.ms}`).toBe(true);
    expect(Number.isFinite(record.tflops) && record.tflops! > 0, `${label}: TFLOP/s ${record.tflops}`).toBe(true);
    expect(record.tflops! * record.ms! * 1e9, label).toBeCloseTo(record.flops, -1);
    expect(['timestamp', 'wall-clock'], label).toContain(record.timing);
    expect(record.repeats! >= 1 && record.samplesMs!.every((ms) => Number.isFinite(ms) && ms >= 0), label).toBe(true);
  } else {
    expect(record.status, label).toMatch(/^refused: \S/);
    expect(record.timing, label).toBeNull();
    expect(record.ms, label).toBeNull();
    expect(record.tflops, label).toBeNull();
  }
}

describe.skipIf(!gpu)('kernel benchmark on the GPU', () => {
  it('--quick times flash and math, records efficient as refused, and writes one record per combination', async () => {
    const folder = mkdtempSync(path.join(tmpdir(), 'kernel-bench-'));
    const recordsFile = path.join(folder, 'records.jsonl');
    const lines: string[] = [];
    try {
      const result = await expectNoGpuErrors(gpu!, () =>
        kernelCommand.run({
          device: gpu!,
          args: ['--quick', '--backends', 'flash,math,efficient', '--records', recordsFile],
          print: (line = '') => lines.push(line),
        }),
      );
      const records = result.records as KernelRecord[];
      const config = parseKernelArgs(['--quick']);
      const keys = records.map((r) => [r.shape.length, r.dtype, r.option, r.backend, r.pass].join(' '));
      expect(new Set(keys).size).toBe(keys.length);
      expect(records).toHaveLength(config.shapes.length * config.dtypes.length * config.optionSets.length * 3 * 2);
      for (const record of records) expectWellFormed(record);
      for (const record of records.filter((r) => r.backend !== 'efficient')) {
        expect(record.status, `${record.backend} ${record.pass} ${record.option}`).toBe('ok');
      }
      for (const record of records.filter((r) => r.backend === 'efficient')) {
        expect(record.status).toMatch(record.pass === 'backward' ? /forward only/ : /query length/);
      }
      for (const record of records.filter((r) => r.backend === 'flash')) {
        expect(record.speedupVsMath! > 0 && Number.isFinite(record.speedupVsMath), record.option).toBe(true);
        if (record.pass === 'forward') expect(record.maxAbsDiffVsMath!, `flash vs math out, ${record.option}`).toBeLessThan(1e-4);
        else expect(record.maxAbsDiffVsMath).toBeNull();
      }
      for (const record of records.filter((r) => r.backend === 'math')) expect(record.speedupVsMath).toBeNull();
      const padded = records.find((r) => r.option === 'padding')!;
      expect(padded.keyLengths).toHaveLength(padded.shape.batch);
      expect(result.ok).toBe(true);
      expect(JSON.parse(JSON.stringify(result)).records).toHaveLength(records.length);
      expect(readFileSync(recordsFile, 'utf8').trim().split('\n').map((line) => JSON.parse(line) as KernelRecord)).toEqual(records);
      expect(lines.some((line) => line.startsWith('device: gpu'))).toBe(true);
      expect(lines.some((line) => /^flash tiles f32 D16: (tiled; forward \d+ threads × \d+ rows per thread, \d+-wide tiles; dQ|compact; forward \d+ threads)/.test(line))).toBe(true);
      expect(lines.filter((line) => /^B2 H2 N37 D16 /.test(line))).toHaveLength(records.length);
    } finally {
      rmSync(folder, { recursive: true, force: true });
    }
  });

  it('times packed varlen forward and backward on flash and math, matching outputs; efficient refuses it', async () => {
    const config = parseKernelArgs(['--quick', '--options', 'varlen,varlen+causal,varlen+dropout', '--backends', 'flash,math,efficient']);
    const result = await expectNoGpuErrors(gpu!, () => runKernelBench(gpu!, config));
    expect(result.records).toHaveLength(3 * 3 * 2);
    for (const record of result.records) {
      const label = `${record.backend} ${record.pass} ${record.option}`;
      expectWellFormed(record);
      // FLOPs as for unpacked attention of the full shape (none's, halved for causal).
      const unpacked = parseOptionSet(record.option.includes('causal') ? 'causal' : 'none');
      expect(record.flops, label).toBe(forwardFlops(record.shape, unpacked) * (record.pass === 'backward' ? BACKWARD_FLOP_FACTOR : 1));
      expect(record.keyLengths, label).toHaveLength(record.shape.batch);
      if (record.backend === 'efficient') {
        expect(record.status, label).toMatch(record.pass === 'backward' ? /forward only/ : /varlen/);
        continue;
      }
      expect(record.status, label).toBe('ok');
      if (record.backend === 'flash' && record.pass === 'forward') expect(record.maxAbsDiffVsMath!, `flash vs math out, ${record.option}`).toBeLessThan(1e-4);
    }
  });

  it('records the math backend\'s ResourceLimitError as "refused", and times with the wall clock when asked', async () => {
    const config = { ...parseKernelArgs(['--quick', '--options', 'causal', '--timing', 'wall-clock']), mathBudgetBytes: 1024 };
    const result = await expectNoGpuErrors(gpu!, () => runKernelBench(gpu!, config));
    expect(result.timing).toBe('wall-clock');
    expect(result.records).toHaveLength(4);
    for (const record of result.records) expectWellFormed(record);
    const math = result.records.filter((r) => r.backend === 'math');
    for (const record of math) expect(record.status).toMatch(/^refused: .*memory budget/);
    const flash = result.records.filter((r) => r.backend === 'flash');
    for (const record of flash) {
      expect(record.status).toBe('ok');
      expect(record.timing).toBe('wall-clock');
      expect(record.speedupVsMath).toBeNull();
      expect(record.maxAbsDiffVsMath).toBeNull();
    }
  });

  it('reports the tiles flash runs with, a tuned forward included', async () => {
    const device = gpu!;
    const config = { ...parseKernelArgs(['--quick', '--options', 'none', '--dtype', 'f32']), backends: ['flash' as const] };
    const problem = { dtype: 'f32', headDimQk: 16, headDimV: 16, directKeyValues: true };
    const defaultForward = chooseTiles(problem, device.caps)!.forward;
    // A choice different from the default, as tuneFlashForward (or an app restoring its saved choice) leaves it.
    const tuned = { kernel: 'compact' as const, threads: 64, rowsPerThread: defaultForward.kernel === 'compact' && defaultForward.rowsPerThread === 4 ? 2 : 4, keys: 16 };
    expect(restoreFlashTuning(device, [{ dtype: 'f32', headDim: 16, chosen: tuned }])).toBe(1);
    try {
      const result = await expectNoGpuErrors(device, () => runKernelBench(device, config));
      expect(result.tiles).toEqual([{ dtype: 'f32', headDim: 16, tiles: chooseTiles(problem, device.caps, tuned), matrixBackward: null, storedQuery: null }]);
      expect(formatTiles(result.tiles)).toEqual([`flash tiles f32 D16: compact; forward 64 threads × ${tuned.rowsPerThread} query rows per thread, 16 keys per tile; dQ 64 × ${tuned.rowsPerThread}, 16 keys; dK/dV 64 threads × ${tuned.rowsPerThread} keys per thread, ${result.tiles[0]!.tiles!.backwardRows} query rows per tile (head-dim buckets 16/16)`]);
      expect(result.records.every((record) => record.status === 'ok')).toBe(true);
    } finally {
      // Back to the default's choice.
      restoreFlashTuning(device, [{ dtype: 'f32', headDim: 16, chosen: defaultForward }]);
    }
  });
});

describe.skipIf(!gpu)('tuned backward shapes in the benchmark', () => {
  it('reports the tiled backward shapes the device was tuned to, and prints each tuning against the default', () => {
    const device = gpu!;
    const config = { ...parseKernelArgs(['--quick', '--options', 'none', '--dtype', 'f32']), backends: ['flash' as const] };
    const problem = { dtype: 'f32', headDimQk: 16, headDimV: 16, directKeyValues: true };
    const defaults = chooseTiles(problem, device.caps)!;
    expect(defaults.forward.kernel).toBe('tiled');
    // Shapes unlike the defaults, as tuneFlashBackward (or an app restoring its saved choice) leaves them.
    const chosen = { query: { threads: 64, rowsPerThread: 1, keyThreads: 4 }, keyValue: { threads: 64, rowsPerThread: 1, keyThreads: 8 } };
    expect(restoreFlashBackwardTuning(device, [{ dtype: 'f32', headDim: 16, chosen }])).toBe(1);
    try {
      const [report] = flashTileReports(device, config);
      expect({ query: report!.tiles!.tiledQuery, keyValue: report!.tiles!.tiledKeyValue }).toEqual(chosen);
      expect(formatTiles([report!])[0]).toContain('dQ 64 threads × 1 rows per thread, 16-wide tiles; dK/dV 64 threads × 1 keys per thread, 32-wide tiles');
      expect(report!.storedQuery).toEqual({ dimThreads: 4, rowQuads: 16, blockN: 16 });
      expect(formatTiles([report!])[0]).toContain("32-wide tiles; dK/dV storing dS and dQ = dS·K (64 threads, 16-key tiles) where one kv head's dS fits 1024 MiB");
    } finally {
      // Back to the defaults' shapes.
      restoreFlashBackwardTuning(device, [{ dtype: 'f32', headDim: 16, chosen: { query: defaults.tiledQuery!, keyValue: defaults.tiledKeyValue! } }]);
    }
    const tuning: BackwardTuning = {
      kernel: 'tiled',
      dtype: 'f32',
      headDim: 16,
      shape: [32, 8, 500, 16],
      method: 'timestamp',
      defaultShapes: { query: defaults.tiledQuery!, keyValue: defaults.tiledKeyValue! },
      chosen,
      candidates: {
        query: [
          { shape: defaults.tiledQuery!, ms: 2, causalMs: 1.1 },
          { shape: chosen.query, ms: 1, causalMs: 0.55 },
        ],
        keyValue: [
          { shape: chosen.keyValue, ms: 0.5, causalMs: 0.28 },
          { shape: defaults.tiledKeyValue!, ms: 0.75, causalMs: 0.4 },
        ],
      },
    };
    const q = defaults.tiledQuery!;
    const kv = defaults.tiledKeyValue!;
    expect(formatBackwardTunings([tuning])).toEqual([
      `flash backward tuned f32 D16 on B32 H8 N500: dQ 64 threads × 1 rows, 16-wide tiles 1.000 ms, causal at 0.91 of its speed (default ${q.threads} threads × ${q.rowsPerThread} rows, ` +
        `${4 * q.keyThreads}-wide tiles 2.000 ms, 2.00×; 2 candidates); dK/dV 64 threads × 1 keys, 32-wide tiles 0.500 ms, causal at 0.89 of its speed (default ${kv.threads} threads × ` +
        `${kv.rowsPerThread} keys, ${4 * kv.keyThreads}-wide tiles 0.750 ms, 1.50×; 2 candidates); timestamp`,
    ]);
  });
});

describe('the forward tuning line', () => {
  it('prints the choice with its causal speed, against the default, and the faster shape passed over for its causal speed', () => {
    // Entry 31 of the bench notes (H200, f32 seed shape).
    const tiled = (threads: number) => ({ kernel: 'tiled' as const, threads, rowsPerThread: 2, keys: 16 });
    const tuning: ForwardTuning = {
      dtype: 'f32',
      headDim: 16,
      shape: [32, 8, 500, 16],
      method: 'timestamp',
      defaultTiles: tiled(64),
      chosen: tiled(128),
      candidates: [
        { tiles: tiled(64), ms: 0.29, causalMs: 0.154 },
        { tiles: tiled(128), ms: 0.285, causalMs: 0.153 },
        { tiles: tiled(256), ms: 0.261, causalMs: 0.164 },
      ],
    };
    expect(formatTunings([tuning])).toEqual([
      'flash forward tuned f32 D16 on B32 H8 N500: tiled 128 threads × 2 rows, 16 keys 0.285 ms, causal at 0.93 of its speed; default tiled 64 threads × 2 rows, ' +
        '16 keys 0.290 ms (1.02×); passed over tiled 256 threads × 2 rows, 16 keys 0.261 ms, causal at 0.80 of its speed; 3 candidates (best tiled 0.261 ms; timestamp)',
    ]);
  });
});

describe('tuned matrix backward shapes in the benchmark', () => {
  // Caps of a device with 16×16×16 f16→f32 subgroup matrices and 32-wide subgroups (the H100/H200's).
  const caps = {
    shaderF16: true,
    subgroups: true,
    subgroupMatrix: true,
    subgroupMinSize: 32,
    subgroupMaxSize: 32,
    subgroupMatrixConfigs: [{ componentType: 'f16', resultComponentType: 'f32', M: 16, N: 16, K: 16 }],
    maxComputeWorkgroupStorageSize: 49152,
    maxComputeInvocationsPerWorkgroup: 1024,
    maxComputeWorkgroupsPerDimension: 65535,
    maxStorageBufferBindingSize: 2 ** 31,
    maxStorageBuffersPerShaderStage: 16,
  } as FlashCaps;
  const problem = { dtype: 'f16', headDimQk: 64, headDimV: 64, directKeyValues: true } as const;
  const tuned: MatrixBackwardShapes = { query: { subgroups: 4, keys: 32 }, keyValue: { subgroups: 2, rows: 64 } };

  it('prints the matrix dQ and dK/dV shapes the backward takes, tuned ones included, and a matrix tuning against the default', () => {
    const report = (backward?: TunedBackwardShapes) => {
      const tiles = chooseTiles(problem, caps, undefined, backward)!;
      return formatTiles([{ dtype: 'f16', headDim: 64, tiles, matrixBackward: matrixBackwardShapes(tiles, caps), storedQuery: null }])[0]!;
    };
    expect(report()).toContain(
      "backward on subgroup matrices, dK/dV 1 subgroups × 16-row tiles storing dS (f16) and dQ = dS·K (a subgroup per 16 rows) where one kv head's dS fits 1024 MiB, " +
        'else dQ 1 subgroups × 16-key tiles (where their copies fit; else dQ 128 threads',
    );
    const tunedReport = report({ matrixQuery: tuned.query, matrixKeyValue: tuned.keyValue });
    expect(tunedReport).toContain('dK/dV 2 subgroups × 64-row tiles storing dS');
    expect(tunedReport).toContain('else dQ 4 subgroups × 32-key tiles');
    const defaults = matrixBackwardShapes(chooseTiles(problem, caps)!, caps)!;
    const tuning: BackwardTuning = {
      kernel: 'matrix',
      dtype: 'f16',
      headDim: 64,
      shape: [4, 16, 2048, 64],
      method: 'timestamp',
      defaultShapes: defaults,
      chosen: tuned,
      candidates: {
        query: [
          { shape: defaults.query, ms: 9.4, causalMs: 5.0 },
          { shape: tuned.query, ms: 9.2, causalMs: 4.9 },
        ],
        keyValue: [
          { shape: defaults.keyValue, ms: 9.5, causalMs: 5.0 },
          { shape: tuned.keyValue, ms: 9.0, causalMs: 4.8 },
          // The fastest unmasked, passed over: its causal calls ran at 0.79 of its speed.
          { shape: { subgroups: 4, rows: 16 }, ms: 8.8, causalMs: 5.6 },
        ],
      },
    };
    expect(formatBackwardTunings([tuning])).toEqual([
      'flash backward tuned f16 D64 on B4 H16 N2048: dQ matrix 4 subgroups × 32-key tiles 9.200 ms, causal at 0.94 of its speed (default matrix 1 subgroups × ' +
        '16-key tiles 9.400 ms, 1.02×; 2 candidates); dK/dV matrix 2 subgroups × 64-row tiles 9.000 ms, causal at 0.94 of its speed (default matrix 1 subgroups × ' +
        '16-row tiles 9.500 ms, 1.06×; passed over matrix 4 subgroups × 16-row tiles 8.800 ms, causal at 0.79 of its speed; 3 candidates); timestamp',
    ]);
  });
});

describe.skipIf(!gpu)('kernel benchmark --profile', () => {
  it('prints each pass\'s GPU time per kernel under its row: flash\'s forward kernel, then delta, dK/dV and dQ backward', async () => {
    expect(gpu!.caps.timestampQuery, 'the test device has timestamp-query').toBe(true);
    const lines: string[] = [];
    const result = await expectNoGpuErrors(gpu!, () =>
      kernelCommand.run({
        device: gpu!,
        args: ['--quick', '--options', 'causal', '--backends', 'flash', '--no-compare', '--profile'],
        print: (line = '') => lines.push(line),
      }),
    );
    const records = result.records as KernelRecord[];
    expect(records.map((record) => record.pass)).toEqual(['forward', 'backward']);
    const [forward, backward] = records as [KernelRecord, KernelRecord];
    expect(forward.profile!.kernels.map((share) => share.kernel)).toEqual([expect.stringMatching(/^flash-forward/)]);
    const backwardKernels = backward.profile!.kernels.map((share) => share.kernel);
    expect(backwardKernels[0]).toBe('flash-backward-delta');
    expect(backwardKernels.slice(1).sort()).toEqual([expect.stringMatching(/^flash-backward-key-value/), expect.stringMatching(/^flash-backward-query/)]);
    for (const record of records) {
      const { kernels, untimedDispatches } = record.profile!;
      expect(untimedDispatches).toBe(0);
      for (const share of kernels) expect(share.ms > 0 && share.dispatches === 1, `${record.pass} ${share.kernel}`).toBe(true);
      const row = lines.findIndex((line) => line === formatRecord(record));
      expect(lines[row + 1]).toMatch(new RegExp(`^ {4}kernels: ${kernels[0]!.kernel} \\d+\\.\\d{3} ms \\(\\d+%\\)`));
    }
  });
});

describe.skipIf(!gpu)('kernel benchmark --forward-tiles', () => {
  it('sets the forward tiles where they fit and says where they do not', () => {
    const device = gpu!;
    const config = parseKernelArgs(['--shape', '1,1,8,16', '--dtype', 'f32']);
    const problem = { dtype: 'f32', headDimQk: 16, headDimV: 16, directKeyValues: true };
    const defaultForward = chooseTiles(problem, device.caps)!.forward;
    const rows = defaultForward.kernel === 'compact' && defaultForward.rowsPerThread === 4 ? 2 : 4;
    const tiles = { kernel: 'compact' as const, threads: 64, rowsPerThread: rows, keys: 16 };
    try {
      expect(setForwardTiles(device, config, tiles)).toEqual([`flash forward tiles f32 D16: set to compact 64 threads × ${rows} rows × 16 keys`]);
      expect(tunedForwardTiles(device.gpu, 'f32', 16, 16)).toEqual(tiles);
      expect(chooseTiles(problem, device.caps, tunedForwardTiles(device.gpu, 'f32', 16, 16))!.forward).toEqual(tiles);
      const tooWide = { ...tiles, threads: device.caps.maxComputeInvocationsPerWorkgroup * 2 };
      expect(setForwardTiles(device, config, tooWide)).toEqual([
        `flash forward tiles f32 D16: compact ${tooWide.threads} threads × ${rows} rows × 16 keys does not fit this device and head dim; not set`,
      ]);
      const matrix = { kernel: 'matrix' as const, threads: 32, rowsPerThread: 1, keys: 32 };
      expect(setForwardTiles(device, config, matrix)).toEqual(['flash forward tiles f32 D16: the matrix forward is f16 only; not set']);
      // Neither refusal replaced the earlier choice.
      expect(tunedForwardTiles(device.gpu, 'f32', 16, 16)).toEqual(tiles);
    } finally {
      restoreFlashTuning(device, [{ dtype: 'f32', headDim: 16, chosen: defaultForward }]);
    }
  });
});

describe.skipIf(!gpu?.caps.timestampQuery)('kernel benchmark with timestamps', () => {
  it('a refused call leaves no timestamp pass behind on a destroyed query set', async () => {
    const config = { ...parseKernelArgs(['--quick', '--options', 'none', '--timing', 'timestamp']), mathBudgetBytes: 1024 };
    // expectNoGpuErrors fails on the validation error a dangling timestamp pass would cause at the next submit.
    const result = await expectNoGpuErrors(gpu!, async () => {
      const bench = await runKernelBench(gpu!, config);
      await gpu!.sync();
      return bench;
    });
    expect(result.records.filter((r) => r.backend === 'math').every((r) => r.status.startsWith('refused'))).toBe(true);
    expect(result.records.filter((r) => r.backend === 'flash').every((r) => r.status === 'ok' && r.timing === 'timestamp')).toBe(true);
  });
});

describe('kernel benchmark without WebGPU', () => {
  it('says it needs a GPU device and fails instead of timing the CPU', async () => {
    const lines: string[] = [];
    const result = await kernelCommand.run({ device: cpuDevice(), args: ['--quick'], print: (line = '') => lines.push(line) });
    expect(result.ok).toBe(false);
    expect(result.records).toEqual([]);
    expect(lines.join('\n')).toMatch(/times WebGPU kernels and this is the CPU device/);
  });
});
