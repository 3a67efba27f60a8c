import { gelu, relu, type Device, type Tensor } from '@webattn/tensor';
import { Module } from './module';

/** max(x, 0) (torch.nn.ReLU). */
export class ReLU extends Module {
  constructor(device: Device) {
    super(device);
  }

  forward(input: Tensor): Tensor {
    return relu(input);
  }
}

/** x·Φ(x) with the exact erf form (torch.nn.GELU's default). */
export class GELU extends Module {
  constructor(device: Device) {
    super(device);
  }

  forward(input: Tensor): Tensor {
    return gelu(input);
  }
}

/** The activations TransformerEncoderLayer accepts by name. */
export type ActivationName = 'relu' | 'gelu';

export function activationFunction(name: ActivationName | ((x: Tensor) => Tensor)): (x: Tensor) => Tensor {
  if (typeof name === 'function') return name;
  return name === 'gelu' ? gelu : relu;
}
