/**
 * Training works end to end on the GPU (lavapipe in CI): a one-layer transformer learns to reverse sequences of
 * digits. The same run with the flash backend and with the math backend (dropout 0) must both get the loss below
 * LOSS_THRESHOLD within STEPS steps, and their loss curves must agree within CURVE_TOLERANCE.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { add, type Device, type Tensor } from '@webattn/tensor';
import { expectNoGpuErrors, freshSeed, openTestDevice } from '@webattn/tensor/testing';
import { withSdpaBackends, type SdpaBackendName } from '@webattn/sdpa';
import { Adam } from './adam';
import { clipGradNorm } from './clip-grad';
import { Embedding } from './embedding';
import { uniformParameter } from './init';
import { Linear } from './linear';
import { crossEntropy } from './loss';
import { Module } from './module';
import { TransformerEncoderLayer } from './transformer-encoder-layer';

const gpu = await openTestDevice();
afterAll(() => gpu?.destroy());

const VOCAB = 8;
const LENGTH = 8;
const BATCH = 16;
const EMBED = 32;
export const STEPS = 90;
export const LOSS_THRESHOLD = 0.1;
/** Max |loss_flash − loss_math| over the first CURVE_STEPS steps (f32 rounding differs between the kernels). */
export const CURVE_STEPS = 40;
export const CURVE_TOLERANCE = 2e-3;

class Reverser extends Module {
  readonly embedding: Embedding;
  readonly position: Tensor;
  readonly encoder: TransformerEncoderLayer;
  readonly head: Linear;

  constructor(device: Device, seed: number) {
    super(device);
    this.embedding = this.registerModule('embedding', new Embedding(device, VOCAB, EMBED, { seed }));
    this.position = this.registerParameter('position', uniformParameter(device, [LENGTH, EMBED], 0.5, seed + 1));
    this.encoder = this.registerModule(
      'encoder',
      new TransformerEncoderLayer(device, EMBED, 4, { dimFeedforward: 64, dropout: 0, batchFirst: true, seed: seed + 2 }),
    );
    this.head = this.registerModule('head', new Linear(device, EMBED, VOCAB, { seed: seed + 3 }));
  }

  forward(tokens: ArrayLike<number>): Tensor {
    const embedded = this.embedding.forward(tokens, [BATCH, LENGTH]);
    const positioned = add(embedded, this.position);
    embedded.dispose();
    const encoded = this.encoder.forward(positioned);
    positioned.dispose();
    const logits = this.head.forward(encoded);
    encoded.dispose();
    return logits;
  }
}

/** Batch `step` of the task: random digits and, as targets, the same rows reversed. */
function batchFor(seed: number, step: number): { tokens: Int32Array; targets: Int32Array } {
  let state = (seed ^ Math.imul(step + 1, 0x9e3779b9)) >>> 0 || 1;
  const tokens = new Int32Array(BATCH * LENGTH);
  for (let i = 0; i < tokens.length; i++) {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    tokens[i] = (state >>> 0) % VOCAB;
  }
  const targets = new Int32Array(tokens.length);
  for (let b = 0; b < BATCH; b++) {
    for (let t = 0; t < LENGTH; t++) targets[b * LENGTH + t] = tokens[b * LENGTH + LENGTH - 1 - t]!;
  }
  return { tokens, targets };
}

async function train(device: Device, backend: SdpaBackendName, seed: number): Promise<number[]> {
  return withSdpaBackends([backend], async () => {
    const model = new Reverser(device, seed);
    const optimizer = new Adam(model.parameters(), { lr: 1e-2 });
    const losses: number[] = [];
    for (let step = 0; step < STEPS; step++) {
      const { tokens, targets } = batchFor(seed, step);
      optimizer.zeroGrad();
      const logits = model.forward(tokens);
      const loss = crossEntropy(logits, targets);
      logits.dispose();
      loss.backward();
      clipGradNorm(model.parameters(), 1)?.dispose();
      optimizer.step();
      losses.push((await loss.toArray())[0]!);
      loss.dispose();
    }
    optimizer.zeroGrad();
    model.dispose();
    return losses;
  });
}

describe.skipIf(!gpu)('training: a transformer layer learns to reverse sequences', () => {
  it(`loss < ${LOSS_THRESHOLD} within ${STEPS} steps on flash and on math; curves agree`, async () => {
    const seed = freshSeed();
    await expectNoGpuErrors(gpu!, async () => {
      const flash = await train(gpu!, 'flash', seed);
      const math = await train(gpu!, 'math', seed);
      const report = (losses: number[]) =>
        [0, 10, 20, 40, 60, 80, STEPS - 1].map((s) => `${s}:${losses[s]?.toFixed(4)}`).join(' ');
      console.info(`[training seed ${seed}] flash ${report(flash)}\n[training seed ${seed}] math  ${report(math)}`);
      expect(flash[0], `seed ${seed}: starts near ln(${VOCAB})`).toBeGreaterThan(1.5);
      expect(Math.min(...flash.slice(-5)), `seed ${seed}: flash final loss`).toBeLessThan(LOSS_THRESHOLD);
      expect(Math.min(...math.slice(-5)), `seed ${seed}: math final loss`).toBeLessThan(LOSS_THRESHOLD);
      const gap = Math.max(...flash.slice(0, CURVE_STEPS).map((loss, i) => Math.abs(loss - math[i]!)));
      expect(gap, `seed ${seed}: flash vs math loss curves over ${CURVE_STEPS} steps`).toBeLessThan(CURVE_TOLERANCE);
    });
  });
});
