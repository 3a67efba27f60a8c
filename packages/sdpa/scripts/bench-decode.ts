/**
 * Runs benchmarkDecode on the first GPU (Node, Dawn) and prints the table; with an output path, also writes the
 * rows as JSON. Used to calibrate src/cost-model.ts on lavapipe and on the GPU machine:
 *   node tools/bench/scripts/bundle.mjs packages/sdpa/scripts/bench-decode.ts .gpu/sdpa-bench.mjs
 *   bash .gpu/remote.sh node .gpu/sdpa-bench.mjs $OUT/sdpa-bench.json      (GPU machine)
 */
import { writeFileSync } from 'node:fs';
import { createDevice } from '@webattn/tensor';
import { benchmarkDecode, formatDecodeBenchmark, type DecodeShape } from '../src/benchmark';

const shapes: DecodeShape[] = [
  { batch: 1, queryHeads: 1, kvHeads: 1, queryLength: 1, keyLength: 16, headDim: 16 },
  { batch: 1, queryHeads: 8, kvHeads: 8, queryLength: 1, keyLength: 1024, headDim: 64 },
  { batch: 1, queryHeads: 8, kvHeads: 2, queryLength: 1, keyLength: 4096, headDim: 64 },
  { batch: 4, queryHeads: 32, kvHeads: 8, queryLength: 1, keyLength: 16384, headDim: 128 },
  { batch: 1, queryHeads: 4, kvHeads: 4, queryLength: 16, keyLength: 2048, headDim: 128 },
  { batch: 1, queryHeads: 4, kvHeads: 4, queryLength: 256, keyLength: 256, headDim: 64 },
  { batch: 2, queryHeads: 8, kvHeads: 8, queryLength: 512, keyLength: 512, headDim: 64 },
  { batch: 4, queryHeads: 16, kvHeads: 16, queryLength: 2048, keyLength: 2048, headDim: 64 },
];

const device = await createDevice({ requireGpu: true });
console.log(`device: ${device.info.adapter}`);
const selected = process.env.SHAPES ? process.env.SHAPES.split(',').map((index) => shapes[Number(index)]!) : shapes;
const rows = await benchmarkDecode(device, { shapes: selected, repeats: Number(process.env.REPEATS ?? 5) });
console.log(formatDecodeBenchmark(rows));
if (process.argv[2]) writeFileSync(process.argv[2], JSON.stringify({ device: device.info, rows }, null, 2));
device.destroy();
