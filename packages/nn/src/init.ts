import { elementWord, seedKey, tensor, type Device, type Tensor } from '@webattn/tensor';

/**
 * Parameter initialisation as PyTorch's defaults, drawn from Philox so a seed gives the same weights on every
 * device. `SeedSequence` hands each parameter of a model its own seed derived from one model seed.
 */
export class SeedSequence {
  private next: number;

  constructor(seed?: number) {
    this.next = seed ?? Math.floor(Math.random() * 2 ** 31);
  }

  /** A new seed (deterministic given the constructor's seed). */
  take(): number {
    const seed = this.next;
    this.next = (Math.imul(this.next ^ 0x9e3779b9, 0x85ebca6b) >>> 0) % 2 ** 31;
    return seed;
  }
}

/** A parameter with values uniform in [-bound, bound) (PyTorch's kaiming/xavier uniform inits). */
export function uniformParameter(device: Device, shape: readonly number[], bound: number, seed: number): Tensor {
  const key = seedKey(seed);
  const count = shape.reduce((a, b) => a * b, 1);
  const values = new Float32Array(count);
  for (let i = 0; i < count; i++) values[i] = (2 * (elementWord(key, 0, i) / 4294967296) - 1) * bound;
  return tensor(device, values, shape, { requiresGrad: true });
}

/** A parameter filled with `value` (LayerNorm's ones and zeros, attention biases' zeros). */
export function constantParameter(device: Device, shape: readonly number[], value: number): Tensor {
  const count = shape.reduce((a, b) => a * b, 1);
  return tensor(device, new Float32Array(count).fill(value), shape, { requiresGrad: true });
}

/** A parameter with normal values of standard deviation `std` (PyTorch's xavier_normal_ for bias_k/bias_v). */
export function normalParameter(device: Device, shape: readonly number[], std: number, seed: number): Tensor {
  const key = seedKey(seed);
  const count = shape.reduce((a, b) => a * b, 1);
  const values = new Float32Array(count);
  for (let i = 0; i < count; i++) {
    const u1 = (elementWord(key, 1, 2 * i) + 1) / 4294967297;
    const u2 = elementWord(key, 1, 2 * i + 1) / 4294967296;
    values[i] = std * Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
  }
  return tensor(device, values, shape, { requiresGrad: true });
}
