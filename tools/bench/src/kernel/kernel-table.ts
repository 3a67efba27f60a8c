/** The kernel benchmark's lines for a terminal: tile choices, then one table row per record. */
import { STORED_SCORES_BYTES, causalFraction, type BackwardTuning, type CandidateTimes, type ForwardTuning, type TiledShape } from '@webattn/flash';
import type { BenchShape } from './kernel-args';
import type { KernelRecord, TileReport } from './run-kernel-bench';

export const formatShape = (shape: BenchShape) => `B${shape.batch} H${shape.heads} N${shape.length} D${shape.headDim}`;

export function formatTiles(reports: readonly TileReport[]): string[] {
  return reports.map(({ dtype, headDim, tiles, matrixBackward, storedQuery }) => {
    if (!tiles) return `flash tiles ${dtype} D${headDim}: none fit this device (flash refuses this head dim)`;
    const buckets = `(head-dim buckets ${tiles.headDimQk}/${tiles.headDimV})`;
    const { forward, tiledQuery, tiledKeyValue } = tiles;
    const shape = (s: { threads: number; rowsPerThread: number; keyThreads: number }, what: string) =>
      `${s.threads} threads × ${s.rowsPerThread} ${what} per thread, ${4 * s.keyThreads}-wide tiles`;
    const stored = storedQuery
      ? `; dK/dV storing dS and dQ = dS·K (${storedQuery.dimThreads * storedQuery.rowQuads} threads, ${storedQuery.blockN}-key tiles) ` +
        `where one kv head's dS fits ${STORED_SCORES_BYTES / 2 ** 20} MiB`
      : '';
    const tiledBackward = tiledQuery && tiledKeyValue ? `dQ ${shape(tiledQuery, 'rows')}; dK/dV ${shape(tiledKeyValue, 'keys')}${stored}` : null;
    if (forward.kernel === 'matrix') {
      return (
        `flash tiles ${dtype} D${headDim}: matrix forward (subgroup matrices${tiles.directKeyValues ? ', k and v loaded directly' : ''}) ${forward.threads / 32} subgroups × ` +
        `${forward.rowsPerThread} blocks of 16 rows, ${forward.keys} keys per tile; backward ` +
        (matrixBackward
          ? `on subgroup matrices, dK/dV ${matrixBackward.keyValue.subgroups} subgroups × ${matrixBackward.keyValue.rows}-row tiles storing dS (f16) and dQ = dS·K ` +
            `(a subgroup per 16 rows) where one kv head's dS fits ${STORED_SCORES_BYTES / 2 ** 20} MiB, else dQ ${matrixBackward.query.subgroups} subgroups × ` +
            `${matrixBackward.query.keys}-key tiles (where their copies fit; else ${tiledBackward ?? 'compact'})`
          : (tiledBackward ?? 'compact')) +
        ` ${buckets}`
      );
    }
    if (forward.kernel === 'tiled' && tiledBackward) {
      return `flash tiles ${dtype} D${headDim}: tiled; forward ${shape({ ...forward, keyThreads: forward.keys / 4 }, 'rows')}; ${tiledBackward} ${buckets}`;
    }
    return (
      `flash tiles ${dtype} D${headDim}: compact; forward ${forward.threads} threads × ${forward.rowsPerThread} query rows ` +
      `per thread, ${forward.keys} keys per tile; dQ ${tiles.forwardThreads} × ${tiles.forwardRowsPerThread}, ${tiles.forwardKeys} keys; ` +
      `dK/dV ${tiles.backwardKeys} threads × ${tiles.forwardRowsPerThread} keys per thread, ${tiles.backwardRows} query rows per tile ${buckets}`
    );
  });
}

const COLUMNS = [
  ['shape', 22],
  ['dtype', 6],
  ['option', 20],
  ['backend', 10],
  ['pass', 9],
  ['ms', 11],
  ['TFLOP/s', 9],
  ['vs math', 9],
  ['max|Δ| vs math', 14],
] as const;

export function tableHeader(): string {
  return COLUMNS.map(([name, width], index) => (index < 5 ? name.padEnd(width) : name.padStart(width))).join(' ');
}

function tflopsText(value: number): string {
  return value >= 100 ? value.toFixed(0) : value >= 1 ? value.toFixed(2) : value.toPrecision(3);
}

export function formatRecord(record: KernelRecord, maxReasonLength = 110): string {
  const head = [formatShape(record.shape), record.dtype, record.option, record.backend, record.pass].map((text, index) =>
    text.padEnd(COLUMNS[index]![1]),
  );
  if (record.status !== 'ok' || record.ms === null || record.tflops === null) {
    const reason = record.status.length > maxReasonLength ? `${record.status.slice(0, maxReasonLength - 1)}…` : record.status;
    return `${head.join(' ')} ${reason}`;
  }
  const cells = [
    record.ms.toFixed(record.ms >= 100 ? 1 : 3),
    tflopsText(record.tflops),
    record.speedupVsMath === null ? '' : `×${record.speedupVsMath.toFixed(2)}`,
    record.maxAbsDiffVsMath === null ? '' : record.maxAbsDiffVsMath.toExponential(1),
  ].map((text, index) => text.padStart(COLUMNS[index + 5]![1]));
  return `${head.join(' ')} ${cells.join(' ')}`.trimEnd();
}

const describeTiles = (tiles: ForwardTuning['chosen']) =>
  tiles.kernel === 'matrix'
    ? `matrix ${tiles.threads / 32} subgroups × ${tiles.rowsPerThread} row blocks, ${tiles.keys} keys`
    : `${tiles.kernel} ${tiles.threads} threads × ${tiles.rowsPerThread} rows, ${tiles.keys} keys`;

/** The fastest candidate of each forward kernel ("tiled 1.234 ms, compact 2.345 ms"). */
function bestPerKernel(tuning: ForwardTuning): string {
  const best = new Map<string, number>();
  for (const { tiles, ms } of tuning.candidates) best.set(tiles.kernel, Math.min(ms, best.get(tiles.kernel) ?? Infinity));
  return [...best].map(([kernel, ms]) => `${kernel} ${ms.toFixed(3)} ms`).join(', ');
}

/** ", causal at 0.93 of its speed" (the causal calls' TFLOP/s as a fraction of the unmasked), or "" where not timed. */
function causalText(times: CandidateTimes): string {
  const fraction = causalFraction(times);
  return fraction === null ? '' : `, causal at ${fraction.toFixed(2)} of its speed`;
}

/**
 * "; passed over X 0.261 ms, causal at 0.80 of its speed" where the fastest unmasked candidate was not chosen (its
 * causal calls fell under the mask line), else "".
 */
function passedOver<T extends CandidateTimes>(candidates: readonly T[], chosen: T, describe: (candidate: T) => string): string {
  const fastest = candidates.reduce((a, b) => (b.ms < a.ms ? b : a));
  return fastest === chosen || fastest.ms === chosen.ms ? '' : `; passed over ${describe(fastest)} ${fastest.ms.toFixed(3)} ms${causalText(fastest)}`;
}

/** `--tune` results: the chosen forward workgroup shape per dtype and head dim, against the default. */
export function formatTunings(tunings: readonly ForwardTuning[]): string[] {
  return tunings.map((tuning) => {
    const find = (tiles: ForwardTuning['chosen']) => tuning.candidates.find((candidate) => JSON.stringify(candidate.tiles) === JSON.stringify(tiles));
    const chosen = find(tuning.chosen)!;
    const fallback = find(tuning.defaultTiles);
    const versus = fallback === undefined ? '' : `; default ${describeTiles(tuning.defaultTiles)} ${fallback.ms.toFixed(3)} ms (${(fallback.ms / chosen.ms).toFixed(2)}×)`;
    const skipped = passedOver(tuning.candidates, chosen, (candidate) => describeTiles(candidate.tiles));
    return (
      `flash forward tuned ${tuning.dtype} D${tuning.headDim} on B${tuning.shape[0]} H${tuning.shape[1]} N${tuning.shape[2]}: ` +
      `${describeTiles(tuning.chosen)} ${chosen.ms.toFixed(3)} ms${causalText(chosen)}${versus}${skipped}; ${tuning.candidates.length} candidates (best ${bestPerKernel(tuning)}; ${tuning.method})`
    );
  });
}

const describeGrid = (shape: TiledShape, what: string) => `${shape.threads} threads × ${shape.rowsPerThread} ${what}, ${4 * shape.keyThreads}-wide tiles`;

/** A backward kernel's shape in words: tiled (threads × rows or keys per thread) or matrix (subgroups × tile). */
function describeBackwardShape(tuning: BackwardTuning, kernel: 'query' | 'keyValue', shape: object): string {
  if (tuning.kernel === 'tiled') return describeGrid(shape as TiledShape, kernel === 'query' ? 'rows' : 'keys');
  const matrix = shape as { subgroups: number; keys?: number; rows?: number };
  return kernel === 'query' ? `matrix ${matrix.subgroups} subgroups × ${matrix.keys}-key tiles` : `matrix ${matrix.subgroups} subgroups × ${matrix.rows}-row tiles`;
}

/** `--tune` results of the backward: the chosen dQ and dK/dV shapes per dtype and head dim, against the defaults. */
export function formatBackwardTunings(tunings: readonly BackwardTuning[]): string[] {
  return tunings.map((tuning) => {
    const parts = (['query', 'keyValue'] as const).map((kernel) => {
      const times: readonly ({ shape: object } & CandidateTimes)[] = tuning.candidates[kernel];
      const find = (shape: object) => times.find((candidate) => JSON.stringify(candidate.shape) === JSON.stringify(shape))!;
      const [chosen, fallback] = [find(tuning.chosen[kernel]), find(tuning.defaultShapes[kernel])];
      const skipped = passedOver(times, chosen, (candidate) => describeBackwardShape(tuning, kernel, candidate.shape));
      return (
        `${kernel === 'query' ? 'dQ' : 'dK/dV'} ${describeBackwardShape(tuning, kernel, tuning.chosen[kernel])} ${chosen.ms.toFixed(3)} ms${causalText(chosen)} ` +
        `(default ${describeBackwardShape(tuning, kernel, tuning.defaultShapes[kernel])} ${fallback.ms.toFixed(3)} ms, ${(fallback.ms / chosen.ms).toFixed(2)}×${skipped}; ${times.length} candidates)`
      );
    });
    return `flash backward tuned ${tuning.dtype} D${tuning.headDim} on B${tuning.shape[0]} H${tuning.shape[1]} N${tuning.shape[2]}: ${parts.join('; ')}; ${tuning.method}`;
  });
}

