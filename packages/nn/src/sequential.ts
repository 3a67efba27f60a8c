import { InvalidArgumentError, type Device, type Tensor } from '@webattn/tensor';
import { Module } from './module';

/** A module with a one-tensor forward, what Sequential chains. */
export interface TensorModule extends Module {
  forward(input: Tensor): Tensor;
}

/** Runs its children in order, each on the previous one's output; children are named "0", "1", ... as PyTorch. */
export class Sequential extends Module {
  readonly layers: readonly TensorModule[];

  constructor(device: Device, ...layers: TensorModule[]) {
    super(device);
    layers.forEach((layer, index) => {
      if (layer.device !== device) {
        throw new InvalidArgumentError(`Sequential: layer ${index} lives on another device than the Sequential`);
      }
      this.registerModule(String(index), layer);
    });
    this.layers = layers;
  }

  forward(input: Tensor): Tensor {
    let x = input;
    for (const layer of this.layers) {
      const next = layer.forward(x);
      // Intermediates are freed as soon as the next layer has consumed them (autograd keeps what it needs).
      if (next !== x && x !== input) x.dispose();
      x = next;
    }
    return x;
  }
}
