import { VARIANT_LABELS, type SeedConfig } from '@webattn/seed-model';
import type { SeedResult } from './run-seed';

/** The results as an aligned text table: ms/step, ratio to naive (naive ms / variant ms) and backend. */
export function formatSeedTable(results: readonly SeedResult[], config: SeedConfig, deviceName: string): string[] {
  const header = ['options', 'variant', 'ms/step', 'vs naive', 'backend (dispatch log)', 'loss first→last'];
  const rows = results.map((r) => [
    r.options,
    VARIANT_LABELS[r.variant],
    r.msPerStep === null ? 'failed' : r.msPerStep.toFixed(1),
    r.speedupVsNaive === null ? '—' : `${r.speedupVsNaive.toFixed(2)}×`,
    r.error ? `${r.backend === '—' ? '' : `${r.backend}; `}${r.error.slice(0, 90)}` : r.backend,
    r.firstLoss === null || r.lastLoss === null ? '—' : `${r.firstLoss.toFixed(4)}→${r.lastLoss.toFixed(4)}`,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: readonly string[]) => cells.map((cell, i) => cell.padEnd(widths[i]!)).join('  ').trimEnd();
  return [
    `seed mini-test on ${deviceName}: batch ${config.batch}, sequence ${config.seq}, embedding ${config.embed}, ` +
      `${config.heads} heads, ${config.steps} timed steps (+1 warm-up), f32, Adam`,
    '',
    line(header),
    line(widths.map((w) => '-'.repeat(w))),
    ...rows.map(line),
    '',
    '"vs naive" = naive ms/step ÷ variant ms/step with the same options (above 1: faster than naive).',
    ...phaseLines(results),
  ];
}

/** With --profile: forward / backward / optimizer / readback ms per step for each row. */
function phaseLines(results: readonly SeedResult[]): string[] {
  const profiled = results.filter((r) => r.phases);
  if (profiled.length === 0) return [];
  return [
    '',
    'phases (ms/step, GPU drained after each phase): forward · backward · optimizer · loss readback',
    ...profiled.map((r) => {
      const p = r.phases!;
      return `  ${r.options.padEnd(12)} ${r.variant.padEnd(6)} ${[p.forward, p.backward, p.optimizer, p.readback].map((v) => v.toFixed(2).padStart(8)).join(' ')}`;
    }),
  ];
}
