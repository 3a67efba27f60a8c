import { cpuDevice, InvalidArgumentError } from '@webattn/tensor';
import { openTestDevice } from '@webattn/tensor/testing';
import { afterAll, describe, expect, it } from 'vitest';
import { benchmarkDecode, formatDecodeBenchmark } from './benchmark';

const gpu = await openTestDevice();
afterAll(() => gpu?.destroy());

describe.skipIf(!gpu)('benchmarkDecode (for the bench CLI)', () => {
  it('times each backend forced on each shape and lists the ones that cannot run with their reason', async () => {
    const shapes = [{ batch: 1, queryHeads: 2, kvHeads: 1, queryLength: 1, keyLength: 1024, headDim: 16 }];
    const rows = await benchmarkDecode(gpu!, { shapes, backends: ['efficient', 'flash', 'cpu'], repeats: 1 });
    expect(rows.map((row) => row.backend)).toEqual(['efficient', 'flash', 'cpu']);
    for (const row of rows.slice(0, 2)) {
      expect(row.skipped).toBeNull();
      expect(row.milliseconds).toBeGreaterThan(0);
    }
    expect(rows[2]).toMatchObject({ milliseconds: null, skipped: 'cpu: device gpu tensors, need cpu tensors (the cpu backend runs on CPU tensors only)' });
    expect(rows[0]!.dispatcherChoice).toMatch(/^(flash|efficient|math)$/);
    const table = formatDecodeBenchmark(rows);
    expect(table.split('\n')).toHaveLength(4);
    expect(table).toContain('B1 Hq2 Hkv1 L1 S1024 D16');
  });

  it('needs a GPU device', async () => {
    await expect(benchmarkDecode(cpuDevice())).rejects.toThrow(InvalidArgumentError);
  });
});
