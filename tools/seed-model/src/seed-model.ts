import { LayerNorm, Linear, Module } from '@webattn/nn';
import { add, type Device, type Tensor } from '@webattn/tensor';
import { createVariant, type AttentionBlock } from './attention-variants';
import type { OptionSet, VariantName } from './seed-config';
import type { SeedMasks } from './seed-masks';

/** The seed's model: y = head(LayerNorm(x + attention(x))), trained with MSE towards a fixed random target. */
export class SeedModel extends Module {
  readonly attention: AttentionBlock;
  readonly norm: LayerNorm;
  readonly head: Linear;

  constructor(device: Device, variant: VariantName, init: { embed: number; heads: number; dropout: number; seed: number }) {
    super(device);
    this.attention = this.registerModule('attention', createVariant(variant, { device, ...init }));
    this.norm = this.registerModule('norm', new LayerNorm(device, init.embed));
    this.head = this.registerModule('head', new Linear(device, init.embed, init.embed, { seed: init.seed + 17 }));
  }

  forward(x: Tensor, options: OptionSet, masks: SeedMasks): Tensor {
    const attended = this.attention.forward(x, options, masks);
    const residual = add(x, attended);
    attended.dispose();
    const normed = this.norm.forward(residual);
    residual.dispose();
    const out = this.head.forward(normed);
    normed.dispose();
    return out;
  }
}
