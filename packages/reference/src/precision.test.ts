import { roundToHalf } from '@webattn/tensor';
import { freshSeed, randomValues } from '@webattn/tensor/testing';
import { describe, expect, it } from 'vitest';
import { fastRoundToHalf, roundedAccumulateFor, roundedDotFor, rounderFor } from './precision';

describe('reference precision', () => {
  it('fastRoundToHalf equals roundToHalf across normal, subnormal, tie and overflow values', () => {
    const seed = freshSeed();
    const values = [
      0, 1, -1, 65504, 65519, 65520, -65520, 1e6, 2 ** -14, 2 ** -24, 2 ** -25, 3 * 2 ** -25, 1 + 2 ** -11,
      1 + 3 * 2 ** -11, 2048 + 1, 2048 + 3, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY,
      ...randomValues(2000, seed, -10, 10),
      ...Array.from(randomValues(2000, seed + 1, -20, 17), (e) => Math.sign(e) * 2 ** e),
    ];
    for (const value of values) expect(fastRoundToHalf(value), `${value} (seed ${seed})`).toBe(roundToHalf(value));
    expect(fastRoundToHalf(Number.NaN)).toBeNaN();
  });

  it('dot and accumulate round every step in f32 and f16, and not in f64', () => {
    const a = Float64Array.from([1 / 3, 1 / 7, 1e-3]);
    const b = Float64Array.from([3, 7, 1]);
    expect(roundedDotFor('f64')(a, 0, b, 0, 3)).toBe(1 / 3 * 3 + 1 / 7 * 7 + 1e-3);
    const f32 = rounderFor('f32');
    expect(roundedDotFor('f32')(a, 0, b, 0, 3)).toBe(f32(f32(f32(f32(1 / 3 * 3)) + f32(1 / 7 * 7)) + f32(1e-3)));
    const target = Float64Array.from([0.1, 0.2]);
    roundedAccumulateFor('f16')(target, 0, 1 / 3, Float64Array.from([1, 2]), 0, 2);
    expect(Array.from(target)).toEqual([roundToHalf(0.1 + roundToHalf(1 / 3)), roundToHalf(0.2 + roundToHalf(2 / 3))]);
  });
});
