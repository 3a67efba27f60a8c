/**
 * Flash forward/backward cost on lavapipe measured in process CPU time (llvmpipe runs the shaders on this
 * process's threads), which stays meaningful on a shared, overloaded machine where wall-clock timings swing 2×.
 * Run from the repo root:
 *   node --conditions=@webattn/source --import tsx --import @webattn/config/wgsl-node-register \
 *     packages/flash/scripts/cpu-time.ts B,H,N,D [f32|f16] [none|causal|dropout|padding] [iterations]
 * Prints CPU ms per call (median of the iterations) and wall ms, forward and backward.
 */
import { createDevice, tensor, type Tensor } from '@webattn/tensor';
import { randomValues } from '@webattn/tensor/testing';
import { flashAttention, flashAttentionGrad } from '../src/index';

const [B, H, N, D] = (process.argv[2] ?? '1,4,1024,64').split(',').map(Number) as [number, number, number, number];
const dtype = (process.argv[3] ?? 'f32') as 'f32' | 'f16';
const option = process.argv[4] ?? 'none';
const iterations = Number(process.argv[5] ?? 3);
const device = await createDevice({ requireGpu: true });
const make = (seed: number) => tensor(device, randomValues(B * H * N * D, seed), [B, H, N, D], { dtype });
const [q, k, v, gradOut] = [make(1), make(2), make(3), make(4)];
const options = {
  isCausal: option === 'causal',
  dropoutP: option === 'dropout' ? 0.1 : 0,
  dropoutSeed: 7,
  keyLengths: option === 'padding' ? Array.from({ length: B }, (_, b) => Math.max(1, N - ((b * 977) % (N / 2)))) : undefined,
};

async function measure(run: () => Tensor[]): Promise<{ cpu: number; wall: number }> {
  for (const x of run()) x.dispose();
  await device.sync();
  const cpu: number[] = [];
  const wall: number[] = [];
  for (let i = 0; i < iterations; i++) {
    const c0 = process.cpuUsage();
    const w0 = performance.now();
    for (const x of run()) x.dispose();
    await device.sync();
    const c = process.cpuUsage(c0);
    cpu.push((c.user + c.system) / 1000);
    wall.push(performance.now() - w0);
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  return { cpu: median(cpu), wall: median(wall) };
}

const forward = await measure(() => Object.values(flashAttention(q, k, v, options)));
const { out, logsumexp } = flashAttention(q, k, v, options);
const backward = await measure(() => Object.values(flashAttentionGrad(q, k, v, out, logsumexp, gradOut, options)));
console.log(
  `B${B} H${H} N${N} D${D} ${dtype} ${option}: forward cpu ${forward.cpu.toFixed(0)} ms wall ${forward.wall.toFixed(0)} ms; ` +
    `backward cpu ${backward.cpu.toFixed(0)} ms wall ${backward.wall.toFixed(0)} ms`,
);
device.destroy();
