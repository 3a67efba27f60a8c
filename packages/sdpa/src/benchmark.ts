/**
 * Decode-shape benchmark: efficient (split-KV) vs flash vs math through the dispatcher, each forced with the
 * `backends` option. Called by the bench CLI (tools/bench) and used to calibrate cost-model.ts. Times are wall
 * clock per call including submit and GPU sync (median of `repeats`, after one warm-up call per backend).
 */
import { InvalidArgumentError, tensor, type Device, type Tensor } from '@webattn/tensor';
import type { SdpaBackendName } from './backend';
import { explainSdpa, scaledDotProductAttention } from './sdpa';

export interface DecodeShape {
  readonly batch: number;
  readonly queryHeads: number;
  readonly kvHeads: number;
  readonly queryLength: number;
  readonly keyLength: number;
  readonly headDim: number;
}

export interface DecodeBenchmarkRow {
  readonly shape: DecodeShape;
  readonly backend: SdpaBackendName;
  /** Median milliseconds per call; null when the backend cannot run this shape (see `skipped`). */
  readonly milliseconds: number | null;
  readonly skipped: string | null;
  /** What the dispatcher would choose for this shape without restriction. */
  readonly dispatcherChoice: SdpaBackendName | null;
}

export const DEFAULT_DECODE_SHAPES: readonly DecodeShape[] = [
  { batch: 1, queryHeads: 8, kvHeads: 8, queryLength: 1, keyLength: 1024, headDim: 64 },
  { batch: 1, queryHeads: 8, kvHeads: 2, queryLength: 1, keyLength: 4096, headDim: 64 },
  { batch: 1, queryHeads: 4, kvHeads: 4, queryLength: 16, keyLength: 2048, headDim: 128 },
];

function randomTensor(device: Device, shape: readonly number[], seed: number): Tensor {
  let state = seed >>> 0 || 1;
  const values = new Float32Array(shape.reduce((a, b) => a * b, 1));
  for (let i = 0; i < values.length; i++) {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    values[i] = ((state >>> 0) / 4294967296) * 2 - 1;
  }
  return tensor(device, values, [...shape]);
}

/** Median wall-clock milliseconds of `run` (which must leave its work finished, e.g. by awaiting device.sync()). */
export async function medianMilliseconds(run: () => Promise<void>, repeats: number): Promise<number> {
  await run(); // warm-up: pipeline compilation
  const times: number[] = [];
  for (let i = 0; i < repeats; i++) {
    const start = performance.now();
    await run();
    times.push(performance.now() - start);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)]!;
}

export async function benchmarkDecode(
  device: Device,
  options: { readonly shapes?: readonly DecodeShape[]; readonly backends?: readonly SdpaBackendName[]; readonly repeats?: number } = {},
): Promise<DecodeBenchmarkRow[]> {
  if (!device.isGpu) throw new InvalidArgumentError('benchmarkDecode needs a GPU device (the backends compared are WebGPU kernels)');
  const shapes = options.shapes ?? DEFAULT_DECODE_SHAPES;
  const backends = options.backends ?? (['efficient', 'flash', 'math'] as const);
  const repeats = options.repeats ?? 5;
  const rows: DecodeBenchmarkRow[] = [];
  for (const shape of shapes) {
    const q = randomTensor(device, [shape.batch, shape.queryHeads, shape.queryLength, shape.headDim], 1);
    const k = randomTensor(device, [shape.batch, shape.kvHeads, shape.keyLength, shape.headDim], 2);
    const v = randomTensor(device, [shape.batch, shape.kvHeads, shape.keyLength, shape.headDim], 3);
    const enableGqa = shape.queryHeads !== shape.kvHeads;
    const dispatcherChoice = explainSdpa(q, k, v, { enableGqa }).chosen;
    for (const backend of backends) {
      const explanation = explainSdpa(q, k, v, { enableGqa, backends: [backend] });
      if (!explanation.chosen) {
        const report = explanation.backends.find((item) => item.name === backend)!;
        rows.push({ shape, backend, milliseconds: null, skipped: report.rejections.map((item) => item.message).join('; '), dispatcherChoice });
        continue;
      }
      const milliseconds = await medianMilliseconds(async () => {
        const out = scaledDotProductAttention(q, k, v, { enableGqa, backends: [backend] });
        await device.sync();
        out.dispose();
      }, repeats);
      rows.push({ shape, backend, milliseconds, skipped: null, dispatcherChoice });
    }
    q.dispose();
    k.dispose();
    v.dispose();
  }
  return rows;
}

/** The rows as a fixed-width table for the CLI. */
export function formatDecodeBenchmark(rows: readonly DecodeBenchmarkRow[]): string {
  const lines = ['shape                                    backend    ms/call   dispatcher picks'];
  for (const row of rows) {
    const { batch, queryHeads, kvHeads, queryLength, keyLength, headDim } = row.shape;
    const shape = `B${batch} Hq${queryHeads} Hkv${kvHeads} L${queryLength} S${keyLength} D${headDim}`.padEnd(41);
    const time = row.milliseconds === null ? `skipped: ${row.skipped}` : row.milliseconds.toFixed(2).padStart(7);
    lines.push(`${shape}${row.backend.padEnd(11)}${time}   ${row.dispatcherChoice ?? '-'}`);
  }
  return lines.join('\n');
}
