import { cpuDevice, describeAttention } from '@webattn/tensor';
import { describe, expect, it } from 'vitest';
import { benchInputs, benchKeyLengths, sequenceOffsets } from './bench-inputs';
import { parseOptionSet } from './option-sets';

const device = cpuDevice('bench input test');
const shape = { batch: 5, heads: 3, length: 37, headDim: 8 };

describe('kernel bench inputs', () => {
  it('draws key lengths in [ceil(N/2), N], the last one N, the same at the same seed', () => {
    const lengths = benchKeyLengths(shape.batch, shape.length, 42);
    expect(lengths).toHaveLength(shape.batch);
    expect(lengths.every((length) => Number.isInteger(length) && length >= 19 && length <= 37)).toBe(true);
    expect(lengths[shape.batch - 1]).toBe(37);
    expect(benchKeyLengths(shape.batch, shape.length, 42)).toEqual(lengths);
  });

  it('turns sequence lengths into packed offsets: 0, then each running sum', () => {
    expect(sequenceOffsets([3, 5, 1])).toEqual([0, 3, 8, 9]);
    expect(sequenceOffsets([])).toEqual([0]);
  });

  it('keeps [B, H, N, D] inputs and no offsets for the unpacked option sets', () => {
    for (const name of ['none', 'padding+causal', 'padding-mask+dropout']) {
      const inputs = benchInputs(device, shape, 'f32', parseOptionSet(name), 7);
      try {
        for (const t of [inputs.q, inputs.k, inputs.v, inputs.gradOut]) expect(t.shape, name).toEqual([5, 3, 37, 8]);
        expect(inputs.cuSeqlens, name).toBeNull();
        expect(inputs.options.cuSeqlensQ, name).toBeUndefined();
        expect(inputs.options.cuSeqlensK, name).toBeUndefined();
      } finally {
        inputs.dispose();
      }
    }
  });

  it('packs varlen into [total, H, D] with cuSeqlensQ = cuSeqlensK the offsets of the lengths padding draws', () => {
    const seed = 7;
    const padding = benchInputs(device, shape, 'f32', parseOptionSet('padding'), seed);
    const varlen = benchInputs(device, shape, 'f32', parseOptionSet('varlen+dropout+causal'), seed);
    try {
      const lengths = benchKeyLengths(shape.batch, shape.length, seed + 5);
      expect(padding.keyLengths).toEqual(lengths);
      expect(varlen.keyLengths).toEqual(lengths);
      const total = lengths.reduce((sum, length) => sum + length, 0);
      expect(total).toBeLessThan(shape.batch * shape.length);
      for (const t of [varlen.q, varlen.k, varlen.v, varlen.gradOut]) expect(t.shape).toEqual([total, 3, 8]);
      const offsets = varlen.cuSeqlens!;
      expect(offsets).toHaveLength(shape.batch + 1);
      expect(offsets[0]).toBe(0);
      expect(offsets[shape.batch]).toBe(total);
      expect(offsets.slice(1).map((end, b) => end - offsets[b]!)).toEqual(lengths);
      const { options } = varlen;
      expect(options.cuSeqlensQ).toEqual(offsets);
      expect(options.cuSeqlensK).toEqual(offsets);
      expect(options).toMatchObject({ isCausal: true, dropoutP: 0.1 });
      expect(options.keyLengths).toBeUndefined();
      expect(options.attnMask).toBeUndefined();
      // The attention contract accepts them: B sequences, the longest N long (the last, unshortened one).
      const problem = describeAttention(varlen.q, varlen.k, varlen.v, options);
      expect(problem).toMatchObject({ varlen: true, batch: 5, queryHeads: 3, queryLength: 37, keyLength: 37, headDimQk: 8 });
    } finally {
      padding.dispose();
      varlen.dispose();
    }
  });
});
