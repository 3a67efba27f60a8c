import { add, type Device, type Tensor } from '@webattn/tensor';
import { activationFunction, type ActivationName } from './activation';
import { Dropout } from './dropout';
import { SeedSequence } from './init';
import { LayerNorm } from './layer-norm';
import { Linear } from './linear';
import { Module } from './module';
import { MultiheadAttention } from './multihead-attention';

export interface TransformerEncoderLayerOptions {
  /** Feed-forward width (default 2048, as PyTorch). */
  readonly dimFeedforward?: number;
  /** Dropout after attention, inside and after the feed-forward block, and on attention weights (default 0.1). */
  readonly dropout?: number;
  readonly activation?: ActivationName | ((x: Tensor) => Tensor);
  readonly layerNormEps?: number;
  /** [B, L, E] (true) or [L, B, E] (false, PyTorch's default). */
  readonly batchFirst?: boolean;
  /** Pre-norm (LayerNorm before attention and feed-forward) instead of post-norm (default false). */
  readonly normFirst?: boolean;
  readonly bias?: boolean;
  /** Seed of the initial weights and the dropout masks. Default: random. */
  readonly seed?: number;
}

export interface EncoderCall {
  /** [L, L] or [B·H, L, L]: bool true = NOT allowed to attend, or float added (PyTorch's `src_mask`). */
  readonly mask?: Tensor | null;
  /** [B, L]: bool true = padding, ignored as a key (PyTorch's `src_key_padding_mask`). */
  readonly keyPaddingMask?: Tensor | null;
  /** Causal self-attention (needs no mask; with one, both apply). */
  readonly isCausal?: boolean;
}

/**
 * torch.nn.TransformerEncoderLayer: self-attention and a feed-forward block, each with dropout, a residual and
 * LayerNorm (after, or before with normFirst). State-dict names as PyTorch: self_attn.*, linear1.*, linear2.*,
 * norm1.*, norm2.*. Self-attention never asks for weights, so SDPA picks its fastest backend.
 */
export class TransformerEncoderLayer extends Module {
  readonly selfAttn: MultiheadAttention;
  readonly linear1: Linear;
  readonly dropoutInner: Dropout;
  readonly linear2: Linear;
  readonly norm1: LayerNorm;
  readonly norm2: LayerNorm;
  readonly dropout1: Dropout;
  readonly dropout2: Dropout;
  readonly normFirst: boolean;
  private readonly activation: (x: Tensor) => Tensor;

  constructor(
    device: Device,
    readonly dModel: number,
    readonly nhead: number,
    options: TransformerEncoderLayerOptions = {},
  ) {
    super(device);
    const seeds = new SeedSequence(options.seed);
    const dropout = options.dropout ?? 0.1;
    const feedforward = options.dimFeedforward ?? 2048;
    const bias = options.bias ?? true;
    const eps = options.layerNormEps ?? 1e-5;
    this.normFirst = options.normFirst ?? false;
    this.activation = activationFunction(options.activation ?? 'relu');
    this.selfAttn = this.registerModule(
      'self_attn',
      new MultiheadAttention(device, dModel, nhead, {
        dropout,
        bias,
        batchFirst: options.batchFirst ?? false,
        seed: seeds.take(),
      }),
    );
    this.linear1 = this.registerModule('linear1', new Linear(device, dModel, feedforward, { bias, seed: seeds.take() }));
    this.dropoutInner = this.registerModule('dropout', new Dropout(device, dropout, { seed: seeds.take() }));
    this.linear2 = this.registerModule('linear2', new Linear(device, feedforward, dModel, { bias, seed: seeds.take() }));
    this.norm1 = this.registerModule('norm1', new LayerNorm(device, dModel, { eps, bias }));
    this.norm2 = this.registerModule('norm2', new LayerNorm(device, dModel, { eps, bias }));
    this.dropout1 = this.registerModule('dropout1', new Dropout(device, dropout, { seed: seeds.take() }));
    this.dropout2 = this.registerModule('dropout2', new Dropout(device, dropout, { seed: seeds.take() }));
  }

  forward(source: Tensor, call: EncoderCall = {}): Tensor {
    if (this.normFirst) {
      const normed1 = this.norm1.forward(source);
      const attended = addAndFree(source, this.selfAttentionBlock(normed1, call));
      normed1.dispose();
      const normed2 = this.norm2.forward(attended);
      const out = addAndFree(attended, this.feedforwardBlock(normed2));
      normed2.dispose();
      attended.dispose();
      return out;
    }
    const residual1 = addAndFree(source, this.selfAttentionBlock(source, call));
    const attended = this.norm1.forward(residual1);
    residual1.dispose();
    const residual2 = addAndFree(attended, this.feedforwardBlock(attended));
    attended.dispose();
    const out = this.norm2.forward(residual2);
    residual2.dispose();
    return out;
  }

  private selfAttentionBlock(x: Tensor, call: EncoderCall): Tensor {
    const { output } = this.selfAttn.forward(x, x, x, {
      attnMask: call.mask ?? null,
      keyPaddingMask: call.keyPaddingMask ?? null,
      isCausal: call.isCausal ?? false,
      needWeights: false,
    });
    return thenFree(output, this.dropout1.forward(output));
  }

  private feedforwardBlock(x: Tensor): Tensor {
    const hidden = this.linear1.forward(x);
    const activated = thenFree(hidden, this.activation(hidden));
    const dropped = thenFree(activated, this.dropoutInner.forward(activated));
    const projected = thenFree(dropped, this.linear2.forward(dropped));
    return thenFree(projected, this.dropout2.forward(projected));
  }
}

/** a + b, disposing b (an intermediate). */
function addAndFree(a: Tensor, b: Tensor): Tensor {
  const sum = add(a, b);
  b.dispose();
  return sum;
}

/** Returns `next`, disposing `previous` unless it is the same tensor (a layer that passed its input through). */
function thenFree(previous: Tensor, next: Tensor): Tensor {
  if (next !== previous) previous.dispose();
  return next;
}
