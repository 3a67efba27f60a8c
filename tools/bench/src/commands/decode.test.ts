import { afterAll, describe, expect, it } from 'vitest';
import { openTestDevice } from '@webattn/tensor/testing';
import { decodeCommand } from './decode';

const gpu = await openTestDevice();
afterAll(() => gpu?.destroy());

describe.skipIf(!gpu)('bench decode', () => {
  it('times every backend on a decode shape and says what the dispatcher picks', async () => {
    const lines: string[] = [];
    const record = await decodeCommand.run({
      device: gpu!,
      args: ['--shape', '1,4,2,2,1024,32', '--repeats', '1'],
      print: (line = '') => lines.push(line),
    });
    expect(record.ok).toBe(true);
    const rows = record.rows as { backend: string; milliseconds: number | null; dispatcherChoice: string | null }[];
    expect(rows.map((row) => row.backend)).toEqual(['efficient', 'flash', 'math']);
    for (const row of rows) expect(row.milliseconds).toBeGreaterThan(0);
    expect(['efficient', 'flash', 'math']).toContain(rows[0]!.dispatcherChoice);
    expect(lines.join('\n')).toMatch(/B1 Hq4 Hkv2 L2 S1024 D32/);
  });

  it('refuses a malformed shape', async () => {
    await expect(decodeCommand.run({ device: gpu!, args: ['--shape', '1,2,3'], print: () => {} })).rejects.toThrow(/six positive integers/);
  });
});
