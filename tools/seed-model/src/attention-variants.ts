/**
 * The seed's four attention variants, all starting from the same weights (q, k, v and output projections, E×E):
 * - naive: matmul, softmax, matmul from tensor ops (attention as written before fused SDPA existed);
 * - mha: @webattn/nn MultiheadAttention (the dispatcher picks the backend; needWeights false);
 * - sdpa: a custom MHA calling scaledDotProductAttention (SDPA mask polarity);
 * - flash: the same, with `backends: ['flash']` forcing the flash kernel.
 * Only the naive variant branches on nothing: masks arrive precomputed in each variant's polarity (seed-masks).
 */
import { Linear, Module, MultiheadAttention, Scratch, SeedSequence, assignValues } from '@webattn/nn';
import { scaledDotProductAttention, type SdpaBackendName } from '@webattn/sdpa';
import { add, dropout, matmul, scale, softmax, type Device, type Tensor } from '@webattn/tensor';
import type { OptionSet, VariantName } from './seed-config';
import type { SeedMasks } from './seed-masks';

export interface AttentionBlock extends Module {
  /** x [B, L, E] → [B, L, E]. */
  forward(x: Tensor, options: OptionSet, masks: SeedMasks): Tensor;
}

interface VariantInit {
  readonly device: Device;
  readonly embed: number;
  readonly heads: number;
  readonly dropout: number;
  readonly seed: number;
}

/** q, k, v projections as three Linear layers: each output is contiguous and splits into heads as a view. */
class Projections extends Module {
  readonly q: Linear;
  readonly k: Linear;
  readonly v: Linear;
  readonly out: Linear;

  constructor(init: VariantInit) {
    super(init.device);
    const seeds = new SeedSequence(init.seed);
    this.q = this.registerModule('q', new Linear(init.device, init.embed, init.embed, { seed: seeds.take() }));
    this.k = this.registerModule('k', new Linear(init.device, init.embed, init.embed, { seed: seeds.take() }));
    this.v = this.registerModule('v', new Linear(init.device, init.embed, init.embed, { seed: seeds.take() }));
    this.out = this.registerModule('out', new Linear(init.device, init.embed, init.embed, { seed: seeds.take() }));
  }

  /** [B, H, L, D] views of the three projections. */
  heads(x: Tensor, heads: number, scratch: Scratch): [Tensor, Tensor, Tensor] {
    const [B, L, E] = x.shape as [number, number, number];
    return [this.q, this.k, this.v].map((layer) => {
      const projected = scratch.own(layer.forward(x));
      return scratch.own(scratch.own(projected.reshape([B, L, heads, E / heads])).transpose(1, 2));
    }) as [Tensor, Tensor, Tensor];
  }

  /** [B, H, L, D] → [B, L, E] → output projection. */
  merge(attended: Tensor, scratch: Scratch): Tensor {
    const [B, H, L, D] = attended.shape as [number, number, number, number];
    const merged = scratch.own(scratch.own(attended.transpose(1, 2)).reshape([B, L, H * D]));
    return this.out.forward(merged);
  }
}

/**
 * A variant built on its own q, k, v and output projections: split into heads, `attend`, merge. Only the
 * attention in between differs (naive tensor ops or scaledDotProductAttention).
 */
abstract class ProjectedAttention extends Module implements AttentionBlock {
  private readonly projections: Projections;
  protected readonly dropoutSeeds: SeedSequence;

  constructor(protected readonly init: VariantInit) {
    super(init.device);
    this.projections = this.registerModule('projections', new Projections(init));
    this.dropoutSeeds = new SeedSequence(init.seed + 1);
  }

  /** q, k, v [B, H, L, D] → attended [B, H, L, D]; intermediate tensors go to `scratch`. */
  protected abstract attend(q: Tensor, k: Tensor, v: Tensor, options: OptionSet, masks: SeedMasks, scratch: Scratch): Tensor;

  forward(x: Tensor, options: OptionSet, masks: SeedMasks): Tensor {
    const scratch = new Scratch();
    try {
      const [q, k, v] = this.projections.heads(x, this.init.heads, scratch);
      return this.projections.merge(scratch.own(this.attend(q, k, v, options, masks, scratch)), scratch);
    } finally {
      scratch.dispose();
    }
  }
}

class NaiveAttention extends ProjectedAttention {
  protected attend(q: Tensor, k: Tensor, v: Tensor, options: OptionSet, masks: SeedMasks, scratch: Scratch): Tensor {
    const headDim = this.init.embed / this.init.heads;
    let scores = scratch.own(scale(scratch.own(matmul(q, k, { transposeB: true })), 1 / Math.sqrt(headDim)));
    const mask = options.keyPadding
      ? masks.paddingAdditive
      : options.boolMask
        ? masks.bandAdditive
        : options.causal
          ? masks.causalAdditive
          : null;
    if (mask) scores = scratch.own(add(scores, mask));
    let probabilities = scratch.own(softmax(scores, -1));
    if (this.training && options.dropout > 0) {
      probabilities = scratch.own(dropout(probabilities, options.dropout, { seed: this.dropoutSeeds.take() }));
    }
    return matmul(probabilities, v);
  }
}

class SdpaAttention extends ProjectedAttention {
  constructor(
    init: VariantInit,
    private readonly backends: readonly SdpaBackendName[] | undefined,
  ) {
    super(init);
  }

  protected attend(q: Tensor, k: Tensor, v: Tensor, options: OptionSet, masks: SeedMasks): Tensor {
    const attnMask = options.keyPadding ? masks.paddingAllowed : options.boolMask ? masks.bandAllowed : undefined;
    const dropoutP = this.training ? options.dropout : 0;
    return scaledDotProductAttention(q, k, v, {
      ...(attnMask ? { attnMask } : {}),
      ...(options.causal ? { isCausal: true } : {}),
      ...(dropoutP > 0 ? { dropoutP, dropoutSeed: this.dropoutSeeds.take() } : {}),
      ...(this.backends ? { backends: this.backends } : {}),
    });
  }
}

class LayerAttention extends Module implements AttentionBlock {
  private readonly attention: MultiheadAttention;

  constructor(init: VariantInit) {
    super(init.device);
    this.attention = this.registerModule(
      'attention',
      new MultiheadAttention(init.device, init.embed, init.heads, { batchFirst: true, dropout: init.dropout, seed: init.seed }),
    );
    // Start from the other variants' weights (in_proj_weight is q, k, v stacked), so all four train the same model.
    const twin = new Projections(init);
    const E = init.embed;
    [twin.q, twin.k, twin.v].forEach((layer, index) => {
      const rows = this.attention.inProjWeight!.narrow(0, index * E, E);
      const bias = this.attention.inProjBias!.narrow(0, index * E, E);
      assignValues(rows, layer.weight);
      assignValues(bias, layer.bias!);
      rows.dispose();
      bias.dispose();
    });
    this.attention.outProj.loadStateDict({ weight: twin.out.weight, bias: twin.out.bias! });
    twin.dispose();
  }

  forward(x: Tensor, options: OptionSet, masks: SeedMasks): Tensor {
    return this.attention.forward(x, x, x, {
      keyPaddingMask: options.keyPadding ? masks.paddingMasked : null,
      attnMask: options.boolMask ? masks.bandMasked : null,
      isCausal: options.causal,
      needWeights: false,
    }).output;
  }
}

export function createVariant(name: VariantName, init: VariantInit): AttentionBlock {
  switch (name) {
    case 'naive':
      return new NaiveAttention(init);
    case 'mha':
      return new LayerAttention(init);
    case 'sdpa':
      return new SdpaAttention(init, undefined);
    case 'flash':
      return new SdpaAttention(init, ['flash']);
  }
}
