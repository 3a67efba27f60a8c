import { InvalidArgumentError, layerNorm, type Device, type Tensor } from '@webattn/tensor';
import { constantParameter } from './init';
import { Module } from './module';

export interface LayerNormOptions {
  /** Default 1e-5 (PyTorch's). */
  readonly eps?: number;
  /** Learn weight (ones) and bias (zeros); default true. */
  readonly elementwiseAffine?: boolean;
  /** Learn the bias (only with elementwiseAffine); default true. */
  readonly bias?: boolean;
}

/** Normalises over the trailing `normalizedShape` dims, then scales and shifts (torch.nn.LayerNorm). */
export class LayerNorm extends Module {
  readonly normalizedShape: readonly number[];
  readonly eps: number;
  readonly weight: Tensor | null;
  readonly bias: Tensor | null;

  constructor(device: Device, normalizedShape: number | readonly number[], options: LayerNormOptions = {}) {
    super(device);
    this.normalizedShape = typeof normalizedShape === 'number' ? [normalizedShape] : [...normalizedShape];
    if (this.normalizedShape.length === 0 || this.normalizedShape.some((s) => !Number.isInteger(s) || s <= 0)) {
      throw new InvalidArgumentError(
        `LayerNorm: normalizedShape must be positive integers, got ${JSON.stringify(normalizedShape)}`,
      );
    }
    this.eps = options.eps ?? 1e-5;
    if (!(this.eps >= 0)) throw new InvalidArgumentError(`LayerNorm: eps must be ≥ 0, got ${options.eps}`);
    const affine = options.elementwiseAffine ?? true;
    this.weight = this.registerParameter('weight', affine ? constantParameter(device, this.normalizedShape, 1) : null);
    this.bias = this.registerParameter(
      'bias',
      affine && options.bias !== false ? constantParameter(device, this.normalizedShape, 0) : null,
    );
  }

  forward(input: Tensor): Tensor {
    return layerNorm(input, this.normalizedShape, this.weight ?? undefined, this.bias ?? undefined, this.eps);
  }
}
