import { InvalidArgumentError, matmul, tensor, type Device, type Tensor } from '@webattn/tensor';
import { SeedSequence, normalParameter } from './init';
import { checkFeatures } from './linear';
import { Module } from './module';

/**
 * A lookup table of `numEmbeddings` vectors (torch.nn.Embedding; weight [numEmbeddings, embeddingDim], N(0, 1)
 * init). Indices are host integers; the lookup is a one-hot [N, numEmbeddings] matrix times the weight, so the
 * gradient flows through matmul. Meant for small vocabularies (characters, tokens of a toy task).
 */
export class Embedding extends Module {
  readonly weight: Tensor;

  constructor(
    device: Device,
    readonly numEmbeddings: number,
    readonly embeddingDim: number,
    options: { seed?: number } = {},
  ) {
    super(device);
    checkFeatures('Embedding', { numEmbeddings, embeddingDim });
    const seeds = new SeedSequence(options.seed);
    this.weight = this.registerParameter('weight', normalParameter(device, [numEmbeddings, embeddingDim], 1, seeds.take()));
  }

  /** Vectors for `indices` (row-major, `shape` gives their layout; default [indices.length]) → [...shape, dim]. */
  forward(indices: ArrayLike<number>, shape: readonly number[] = [indices.length]): Tensor {
    const count = indices.length;
    if (shape.reduce((a, b) => a * b, 1) !== count) {
      throw new InvalidArgumentError(`Embedding: shape [${shape.join(', ')}] does not hold ${count} indices`);
    }
    const oneHot = new Float32Array(count * this.numEmbeddings);
    for (let i = 0; i < count; i++) {
      const index = indices[i]!;
      if (!Number.isInteger(index) || index < 0 || index >= this.numEmbeddings) {
        throw new InvalidArgumentError(`Embedding: index ${index} at position ${i} is outside 0..${this.numEmbeddings - 1}`);
      }
      oneHot[i * this.numEmbeddings + index] = 1;
    }
    const selector = tensor(this.device, oneHot, [count, this.numEmbeddings]);
    const rows = matmul(selector, this.weight);
    selector.dispose();
    const out = rows.reshape([...shape, this.embeddingDim]);
    rows.dispose();
    return out;
  }
}
