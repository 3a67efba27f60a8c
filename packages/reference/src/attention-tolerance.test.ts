import { describe, expect, it } from 'vitest';
import { ATTENTION_TOLERANCE, attentionTolerance, compareAttention, expectAttentionClose } from './attention-tolerance';

describe('attention tolerance rule', () => {
  const oracle = [1, -2, 0.5, Number.NEGATIVE_INFINITY];
  const same = [1 + 1e-7, -2, 0.5 - 2e-7, Number.NEGATIVE_INFINITY];

  it('allows multiple × the same-precision error plus a floor scaled by the largest finite magnitude', () => {
    const { multiple, floor } = ATTENTION_TOLERANCE.f32;
    const worst = Math.max(Math.abs(same[0]! - 1), Math.abs(same[2]! - 0.5));
    expect(attentionTolerance(same, oracle, 'f32')).toBe(multiple * worst + floor * 2);
  });

  it('passes an error within the bound and fails one beyond it, naming the seed', () => {
    const tolerance = attentionTolerance(same, oracle, 'f32');
    expect(compareAttention([1 + tolerance * 0.9, -2, 0.5, Number.NEGATIVE_INFINITY], oracle, same, 'f32').pass).toBe(true);
    expect(() =>
      expectAttentionClose('out', [1, -2, 0.5 + tolerance * 1.5, Number.NEGATIVE_INFINITY], oracle, same, 'f32', 42),
    ).toThrow(/out: max error .* at \[2\].*WEBATTN_SEED=42/);
  });

  it('fails on NaN, on an infinity mismatch and on a length mismatch', () => {
    expect(compareAttention([Number.NaN, -2, 0.5, Number.NEGATIVE_INFINITY], oracle, same, 'f32').pass).toBe(false);
    expect(compareAttention([1, -2, 0.5, -1e30], oracle, same, 'f32').pass).toBe(false);
    expect(compareAttention([1, -2, 0.5], oracle, same, 'f32').pass).toBe(false);
  });
});
