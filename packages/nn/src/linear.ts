import { InvalidArgumentError, add, matmul, type Device, type Tensor } from '@webattn/tensor';
import { SeedSequence, uniformParameter } from './init';
import { Module } from './module';

export interface LinearOptions {
  /** Learn an additive bias (default true). */
  readonly bias?: boolean;
  /** Seed of the initial weights (PyTorch's default init, drawn from Philox). Default: random. */
  readonly seed?: number;
}

/** y = x·Wᵀ + b over the last dimension, as torch.nn.Linear (weight [out, in], bias [out]). */
export class Linear extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor | null;

  constructor(
    device: Device,
    readonly inFeatures: number,
    readonly outFeatures: number,
    options: LinearOptions = {},
  ) {
    super(device);
    checkFeatures('Linear', { inFeatures, outFeatures });
    const seeds = new SeedSequence(options.seed);
    // PyTorch: kaiming_uniform_(a=√5) gives bound 1/√in for the weight, and the bias uses the same bound.
    const bound = inFeatures > 0 ? 1 / Math.sqrt(inFeatures) : 0;
    this.weight = this.registerParameter('weight', uniformParameter(device, [outFeatures, inFeatures], bound, seeds.take()));
    this.bias = this.registerParameter(
      'bias',
      options.bias === false ? null : uniformParameter(device, [outFeatures], bound, seeds.take()),
    );
  }

  forward(input: Tensor): Tensor {
    return linear(input, this.weight, this.bias);
  }
}

/** x·Wᵀ + b for x [..., in], W [out, in], b [out] (PyTorch's F.linear). */
export function linear(input: Tensor, weight: Tensor, bias: Tensor | null = null): Tensor {
  const inFeatures = weight.shape[1]!;
  if (input.shape[input.rank - 1] !== inFeatures) {
    throw new InvalidArgumentError(
      `linear: input's last dimension is ${input.shape[input.rank - 1]} but the weight [${weight.shape.join(', ')}] expects ${inFeatures} features`,
    );
  }
  const leading = input.shape.slice(0, -1);
  const flat = input.rank === 2 ? input : input.reshape([-1, inFeatures]);
  const product = matmul(flat, weight, { transposeB: true });
  if (flat !== input) flat.dispose();
  const out = bias ? add(product, bias) : product;
  if (out !== product) product.dispose();
  if (input.rank === 2) return out;
  const shaped = out.reshape([...leading, weight.shape[0]!]);
  out.dispose();
  return shaped;
}

export function checkFeatures(layer: string, sizes: Record<string, number>): void {
  for (const [name, value] of Object.entries(sizes)) {
    if (!Number.isInteger(value) || value <= 0) {
      throw new InvalidArgumentError(`${layer}: ${name} must be a positive integer, got ${value}`);
    }
  }
}
