import { tensor, type AttentionOptions, type Device, type Tensor } from '@webattn/tensor';
import { randomValues } from '@webattn/tensor/testing';
import type { BenchDType, BenchShape } from './kernel-args';
import type { OptionSet } from './option-sets';

/** q, k, v, an upstream gradient and the attention options of one benchmark case, on the device. */
export interface BenchInputs {
  readonly q: Tensor;
  readonly k: Tensor;
  readonly v: Tensor;
  readonly gradOut: Tensor;
  readonly options: AttentionOptions;
  /**
   * Per-batch key lengths when the option set pads (for the table and JSON); for varlen the packed sequences'
   * lengths (query and key lengths alike).
   */
  readonly keyLengths: readonly number[] | null;
  /** Varlen: the sequences' offsets into the packed rows (cuSeqlensQ = cuSeqlensK, B + 1 entries), else null. */
  readonly cuSeqlens: readonly number[] | null;
  dispose(): void;
}

/** Key lengths in [ceil(N/2), N], one per batch entry, the last one always N (some batch is unpadded). */
export function benchKeyLengths(batch: number, length: number, seed: number): number[] {
  const draws = randomValues(batch, seed, 0, 1);
  const shortest = Math.ceil(length / 2);
  return Array.from(draws, (draw, b) => (b === batch - 1 ? length : shortest + Math.floor(draw * (length - shortest + 1))));
}

/** Packed varlen offsets of sequences with these lengths: 0, then each sequence's end (the running sum). */
export function sequenceOffsets(lengths: readonly number[]): number[] {
  const offsets = [0];
  for (const length of lengths) offsets.push(offsets[offsets.length - 1]! + length);
  return offsets;
}

/**
 * The dims of q, k, v and gradOut: [B, H, N, D], or for varlen [total, H, D] with total the packed rows of all
 * sequences (each as long as its drawn length, with no padding between them).
 */
function inputDims(shape: BenchShape, cuSeqlens: readonly number[] | null): number[] {
  return cuSeqlens ? [cuSeqlens[cuSeqlens.length - 1]!, shape.heads, shape.headDim] : [shape.batch, shape.heads, shape.length, shape.headDim];
}

/**
 * Random inputs in [−1, 1) of one shape and dtype, with the option set's masks, packing and dropout. Padding and
 * varlen draw their lengths alike (same seed offset), so at one seed varlen packs the sequences padding pads.
 */
export function benchInputs(device: Device, shape: BenchShape, dtype: BenchDType, set: OptionSet, seed: number): BenchInputs {
  const padded = set.keyLengths || set.boolMask;
  const keyLengths = padded || set.varlen ? benchKeyLengths(shape.batch, shape.length, seed + 5) : null;
  const cuSeqlens = set.varlen && keyLengths ? sequenceOffsets(keyLengths) : null;
  const dims = inputDims(shape, cuSeqlens);
  const count = dims.reduce((a, b) => a * b, 1);
  const make = (offset: number) => tensor(device, randomValues(count, seed + offset), dims, { dtype });
  const q = make(1);
  const k = make(2);
  const v = make(3);
  const gradOut = make(4);
  let mask: Tensor | undefined;
  if (set.boolMask && keyLengths) {
    const allowed = new Uint8Array(shape.batch * shape.length);
    keyLengths.forEach((keys, b) => allowed.fill(1, b * shape.length, b * shape.length + keys));
    mask = tensor(device, allowed, [shape.batch, 1, 1, shape.length], { dtype: 'bool' });
  }
  const options: AttentionOptions = {
    ...(set.keyLengths && keyLengths ? { keyLengths } : {}),
    ...(mask ? { attnMask: mask } : {}),
    ...(cuSeqlens ? { cuSeqlensQ: cuSeqlens, cuSeqlensK: cuSeqlens } : {}),
    ...(set.dropout > 0 ? { dropoutP: set.dropout, dropoutSeed: seed + 6, dropoutOffset: 0 } : {}),
    ...(set.causal ? { isCausal: true } : {}),
  };
  return {
    q,
    k,
    v,
    gradOut,
    options,
    keyLengths,
    cuSeqlens,
    dispose() {
      for (const t of [q, k, v, gradOut, mask]) t?.dispose();
    },
  };
}
