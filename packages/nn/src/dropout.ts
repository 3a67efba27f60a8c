import { InvalidArgumentError, dropout, type Device, type Tensor } from '@webattn/tensor';
import { SeedSequence } from './init';
import { Module } from './module';

/**
 * Zeroes each element with probability p and scales the rest by 1/(1−p) in training mode; identity in eval mode
 * (torch.nn.Dropout). Each call draws a fresh Philox seed from the layer's seed sequence.
 */
export class Dropout extends Module {
  private readonly seeds: SeedSequence;

  constructor(
    device: Device,
    readonly p = 0.5,
    options: { seed?: number } = {},
  ) {
    super(device);
    checkProbability('Dropout', p);
    this.seeds = new SeedSequence(options.seed);
  }

  forward(input: Tensor): Tensor {
    if (!this.training || this.p === 0) return input;
    return dropout(input, this.p, { seed: this.seeds.take(), offset: 0, training: true });
  }
}

export function checkProbability(layer: string, p: number): void {
  if (typeof p !== 'number' || !(p >= 0 && p < 1)) {
    throw new InvalidArgumentError(`${layer}: dropout probability must be in [0, 1), got ${p}`);
  }
}
