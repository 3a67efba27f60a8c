import { InvalidArgumentError, type Device, type Tensor } from '@webattn/tensor';
import { LayerNorm } from './layer-norm';
import { Module } from './module';
import { ModuleList } from './module-list';
import {
  TransformerEncoderLayer,
  type EncoderCall,
  type TransformerEncoderLayerOptions,
} from './transformer-encoder-layer';

export interface TransformerEncoderOptions extends TransformerEncoderLayerOptions {
  /** A final LayerNorm after the last layer (PyTorch's `norm` argument); default false. */
  readonly finalNorm?: boolean;
}

/**
 * torch.nn.TransformerEncoder: `numLayers` independent copies of a TransformerEncoderLayer configuration
 * (state-dict names layers.0.*, layers.1.*, ... and norm.* for the final LayerNorm).
 */
export class TransformerEncoder extends Module {
  readonly layers: readonly TransformerEncoderLayer[];
  readonly norm: LayerNorm | null;

  constructor(
    device: Device,
    dModel: number,
    nhead: number,
    numLayers: number,
    options: TransformerEncoderOptions = {},
  ) {
    super(device);
    if (!Number.isInteger(numLayers) || numLayers < 1) {
      throw new InvalidArgumentError(`TransformerEncoder: numLayers must be a positive integer, got ${numLayers}`);
    }
    const layers = Array.from({ length: numLayers }, (_, index) => {
      const seed = options.seed === undefined ? undefined : options.seed + 7919 * (index + 1);
      return new TransformerEncoderLayer(device, dModel, nhead, { ...options, seed });
    });
    this.layers = this.registerModule('layers', new ModuleList(device, layers)).items;
    this.norm = options.finalNorm
      ? this.registerModule('norm', new LayerNorm(device, dModel, { eps: options.layerNormEps ?? 1e-5 }))
      : null;
  }

  forward(source: Tensor, call: EncoderCall = {}): Tensor {
    let x = source;
    for (const layer of this.layers) {
      const next = layer.forward(x, call);
      if (x !== source) x.dispose();
      x = next;
    }
    if (!this.norm) return x;
    const out = this.norm.forward(x);
    if (x !== source) x.dispose();
    return out;
  }
}
