/**
 * The seed mini-test at CI size (steps 2, batch 2, sequence 16): every variant and option set trains, the dispatch
 * log records the backend each variant ran on, and the CLI command prints its table and writes --json.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cpuDevice } from '@webattn/tensor';
import { openTestDevice } from '@webattn/tensor/testing';
import { main } from '../main';
import { runSeed } from './run-seed';
import { OPTION_SETS, VARIANTS, type SeedConfig } from '@webattn/seed-model';
import { parseSeedArgs } from './seed-args';

const gpu = await openTestDevice();
afterAll(() => gpu?.destroy());

const SMALL: SeedConfig = { batch: 2, seq: 16, embed: 32, heads: 4, steps: 2, seed: 7 };

describe('seed arguments', () => {
  it('default to the seed size and shrink with --steps/--batch/--seq', () => {
    expect(parseSeedArgs([]).config).toMatchObject({ batch: 32, seq: 500, embed: 128, heads: 8, steps: 100 });
    expect(parseSeedArgs(['--profile']).config.profile).toBe(true);
    // A software adapter gets the reduced size unless the seed's size is asked for; explicit numbers still win.
    expect(parseSeedArgs([], { softwareAdapter: true }).config).toMatchObject({ batch: 4, seq: 64, embed: 32, heads: 4 });
    expect(parseSeedArgs(['--size', 'seed'], { softwareAdapter: true }).config).toMatchObject({ batch: 32, seq: 500 });
    expect(parseSeedArgs(['--size=reduced', '--steps', '3']).config).toMatchObject({ batch: 4, steps: 3 });
    expect(() => parseSeedArgs(['--size', 'huge'])).toThrow(/auto, seed or reduced/);
    const small = parseSeedArgs(['--steps', '2', '--batch=2', '--seq', '16', '--variants', 'naive,flash']);
    expect(small.config).toMatchObject({ steps: 2, batch: 2, seq: 16 });
    expect(small.variants).toEqual(['naive', 'flash']);
    expect(() => parseSeedArgs(['--steps', '0'])).toThrow(/positive integer/);
    expect(() => parseSeedArgs(['--options', 'bogus'])).toThrow(/unknown "bogus"/);
    expect(() => parseSeedArgs(['--embed', '30', '--heads', '4'])).toThrow(/divisible/);
  });
});

describe('seed mini-test on the CPU device (no WebGPU adapter)', () => {
  it('runs naive, MultiheadAttention and SDPA on the cpu backend; flash forced reports why it cannot', async () => {
    const results = await runSeed(cpuDevice('seed test'), { ...SMALL, seq: 8, steps: 1 }, VARIANTS, ['none', 'key-padding']);
    for (const result of results) {
      const where = `${result.variant}/${result.options}`;
      if (result.variant === 'flash') {
        expect(result.error, where).toMatch(/unavailable \(flash: .*gpu/);
        continue;
      }
      expect(result.error, where).toBeUndefined();
      expect(result.backend, where).toBe(result.variant === 'naive' ? '—' : 'cpu');
      expect(Number.isFinite(result.lastLoss), where).toBe(true);
    }
  });
});

describe.skipIf(!gpu)('seed mini-test (CI size, GPU)', () => {
  it('trains every variant under every option set and records the dispatched backend', async () => {
    const results = await runSeed(gpu!, SMALL, VARIANTS, OPTION_SETS);
    expect(results).toHaveLength(VARIANTS.length * OPTION_SETS.length);
    for (const result of results) {
      const where = `${result.variant}/${result.options}`;
      expect(result.error, where).toBeUndefined();
      expect(result.msPerStep, where).toBeGreaterThan(0);
      expect(Number.isFinite(result.lastLoss), where).toBe(true);
      if (result.variant === 'naive') {
        expect(result.backend, where).toBe('—'); // tensor ops only, no SDPA call
        expect(result.speedupVsNaive).toBe(1);
      } else {
        expect(result.backend, where).not.toBe('—');
      }
      if (result.variant === 'flash') expect(result.backend, where).toBe('flash');
      // Nothing leaks from step to step: the pool holds no more bytes after the last step than after the warm-up
      // (fewer is possible: the FinalizationRegistry may return storage of tensors collected meanwhile).
      expect(result.inUseBytes!.afterLast, where).toBeLessThanOrEqual(result.inUseBytes!.afterWarmup);
    }
    // Same weights, inputs and options: all four variants compute the same function (dropout off).
    const loss = (variant: string, options: string) => results.find((r) => r.variant === variant && r.options === options)!;
    for (const options of ['none', 'key-padding', 'bool-mask', 'causal']) {
      expect(Math.abs(loss('naive', options).lastLoss! - loss('sdpa', options).lastLoss!), options).toBeLessThan(1e-4);
      expect(Math.abs(loss('naive', options).lastLoss! - loss('flash', options).lastLoss!), options).toBeLessThan(1e-4);
      expect(Math.abs(loss('naive', options).lastLoss! - loss('mha', options).lastLoss!), options).toBeLessThan(1e-4);
    }
  });

  it('the CLI command prints the table and writes --json', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'seed-')), 'seed.json');
    const lines: string[] = [];
    const log = console.log;
    console.log = (line?: unknown) => lines.push(String(line ?? ''));
    let code: number;
    try {
      code = await main(['seed', '--steps', '1', '--batch', '2', '--seq', '8', '--embed', '16', '--heads', '2', '--options', 'none,causal', '--profile', '--json', file]);
    } finally {
      console.log = log;
    }
    expect(code, lines.join('\n')).toBe(0);
    expect(lines.some((line) => line.includes('ms/step') && line.includes('vs naive'))).toBe(true);
    expect(lines.some((line) => line.startsWith('phases'))).toBe(true);
    const record = JSON.parse(readFileSync(file, 'utf8')) as { command: string; ok: boolean; results: { phases?: { forward: number } }[] };
    expect(record.command).toBe('seed');
    expect(record.ok).toBe(true);
    expect(record.results).toHaveLength(8);
    expect(record.results[0]!.phases!.forward).toBeGreaterThan(0);
  });
});
