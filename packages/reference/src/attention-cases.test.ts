import { roundToHalf } from '@webattn/tensor';
import { freshSeed } from '@webattn/tensor/testing';
import { describe, expect, it } from 'vitest';
import { attentionCases, inHalfPrecision, selectAttentionCases } from './attention-cases';

describe('attention conformance cases', () => {
  it('cover the head dims, lengths and features every backend must handle', () => {
    const seed = freshSeed();
    const dims = new Set<number>();
    const lengths = new Set<number>();
    let unequal = false;
    for (const kase of attentionCases) {
      const { q, k, options } = kase.generate(seed);
      dims.add(q.shape.at(-1)!);
      if (q.shape.length === 4) {
        lengths.add(q.shape[2]!).add(k.shape[2]!);
        unequal ||= q.shape[2] !== k.shape[2];
      }
      if (kase.exercises.includes('dropout')) expect(options.dropoutP).toBeGreaterThan(0);
    }
    for (const dim of [8, 40, 59, 64, 111, 128, 256]) expect(dims).toContain(dim);
    for (const length of [1, 2, 17, 97, 130, 1025]) expect(lengths).toContain(length);
    expect(unequal).toBe(true);
    const features = new Set(attentionCases.flatMap((kase) => kase.exercises));
    for (const feature of [
      'bool-mask', 'additive-mask', 'mask-broadcast', 'causal-top-left', 'causal-bottom-right', 'gqa', 'window',
      'softcap', 'key-lengths', 'varlen', 'fully-masked-rows', 'large-logits', 'dropout', 'f16', 'backward',
    ] as const) {
      expect(features).toContain(feature);
    }
    expect(new Set(attentionCases.map((kase) => kase.name)).size).toBe(attentionCases.length);
  });

  it('generate the same inputs from the same seed, new ones from another, representable in their dtype', () => {
    const seed = freshSeed();
    for (const kase of attentionCases) {
      const a = kase.generate(seed);
      const b = kase.generate(seed);
      const c = kase.generate(seed + 1);
      expect(Array.from(a.q.data)).toEqual(Array.from(b.q.data));
      expect(Array.from(a.q.data)).not.toEqual(Array.from(c.q.data));
      const round = kase.dtype === 'f16' ? roundToHalf : Math.fround;
      for (const value of Array.from(a.k.data).slice(0, 64)) expect(round(value)).toBe(value);
    }
  });
});

describe('selectAttentionCases', () => {
  it('skips every case exercising an unsupported feature, with the reason', () => {
    const { run, skipped } = selectAttentionCases({ dropout: 'no dropout yet', f16: 'no shader-f16' });
    expect(run.length + skipped.length).toBe(attentionCases.length);
    expect(run.some((kase) => kase.exercises.includes('dropout') || kase.exercises.includes('f16'))).toBe(false);
    expect(skipped.map((entry) => entry.reason)).toContain('dropout: no dropout yet');
    expect(skipped.filter((entry) => entry.reason.startsWith('f16')).length).toBe(2);
  });

  it('inHalfPrecision gives the same case with half-precision inputs and an f16 expectation', () => {
    const seed = freshSeed();
    const base = attentionCases.find((kase) => kase.name.startsWith('GQA'))!;
    const half = inHalfPrecision(base);
    expect(half.dtype).toBe('f16');
    expect(half.exercises).toContain('f16');
    const original = base.generate(seed);
    const rounded = half.generate(seed);
    expect(rounded.dtype).toBe('f16');
    for (const name of ['q', 'k', 'v', 'gradOut'] as const) {
      expect(rounded[name].dtype).toBe('f16');
      expect(rounded[name].shape).toEqual(original[name].shape);
      const data = rounded[name].data;
      expect(Array.from(data, roundToHalf)).toEqual(Array.from(data));
      // Rounding moved some values (the f32 inputs are not all halves already), by at most half an f16 ulp.
      let moved = 0;
      for (let index = 0; index < data.length; index++) {
        const [value, before] = [data[index]!, original[name].data[index]!];
        if (value !== before) moved++;
        expect(Math.abs(value - before)).toBeLessThanOrEqual(Math.abs(before) * 2 ** -11 + 2 ** -25);
      }
      expect(moved, `seed ${seed}`).toBeGreaterThan(0);
    }
    expect(inHalfPrecision(half)).toBe(half);
  });
});
