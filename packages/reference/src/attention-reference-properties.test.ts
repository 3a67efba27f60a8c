import {
  InvalidArgumentError,
  ShapeError,
  attentionKeep,
  attentionDropoutThreshold,
  attentionDropoutStream,
} from '@webattn/tensor';
import { freshSeed, maxAbsDiff, randomValues } from '@webattn/tensor/testing';
import { describe, expect, it } from 'vitest';
import { attentionReference, attentionReferenceBackward } from './attention-reference';
import type { HostTensor } from './host-tensor';

const seed = freshSeed();
let stream = seed;
const random = (shape: number[], lo = -1, hi = 1): HostTensor => ({
  data: Float64Array.from(randomValues(shape.reduce((a, b) => a * b, 1), stream++, lo, hi)),
  shape,
});
const at = (t: { data: ArrayLike<number> }, index: number) => t.data[index]!;
const loss = (out: Float64Array, grad: HostTensor) => out.reduce((sum, o, i) => sum + o * at(grad, i), 0);

describe(`float64 oracle properties (seed ${seed})`, () => {
  it('a fully masked row gives output 0, logsumexp −∞ and zero gradients, never NaN', () => {
    const [q, k, v, g] = [random([1, 2, 3, 8]), random([1, 2, 5, 8]), random([1, 2, 5, 4]), random([1, 2, 3, 4])];
    const mask: HostTensor = { data: Uint8Array.from([1, 0, 1, 1, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1]), shape: [3, 5] };
    const result = attentionReference(q, k, v, { attnMask: mask });
    expect(Array.from(result.out.slice(4, 8))).toEqual([0, 0, 0, 0]);
    expect(result.logsumexp[1]).toBe(Number.NEGATIVE_INFINITY);
    expect(result.out.every(Number.isFinite)).toBe(true);
    const grads = attentionReferenceBackward(q, k, v, g, { attnMask: mask });
    expect(Array.from(grads.dq.slice(8, 16))).toEqual(new Array(8).fill(0));
    for (const grad of [grads.dq, grads.dk, grads.dv]) expect(grad.every(Number.isFinite)).toBe(true);
  });

  it('GQA equals plain attention with each kv head repeated for its query heads', () => {
    const [q, k, v] = [random([1, 6, 4, 8]), random([1, 2, 7, 8]), random([1, 2, 7, 3])];
    const repeat = (t: HostTensor): HostTensor => {
      const [b, h, s, d] = t.shape as [number, number, number, number];
      const data = new Float64Array(b * 6 * s * d);
      for (let head = 0; head < 6; head++) {
        const source = Math.floor((head * h) / 6);
        data.set(Array.from(t.data).slice(source * s * d, (source + 1) * s * d), head * s * d);
      }
      return { data, shape: [b, 6, s, d] };
    };
    const gqa = attentionReference(q, k, v, { enableGqa: true });
    const plain = attentionReference(q, repeat(k), repeat(v));
    expect(maxAbsDiff(gqa.out, plain.out).value).toBe(0);
  });

  it('key lengths equal the bool key-padding mask, and packed varlen equals separate calls', () => {
    const [q, k, v] = [random([2, 2, 5, 8]), random([2, 2, 6, 8]), random([2, 2, 6, 8])];
    const padding: HostTensor = { data: Uint8Array.from([1, 1, 1, 0, 0, 0, 1, 1, 1, 1, 1, 1]), shape: [2, 1, 1, 6] };
    for (const causalAlignment of ['top-left', 'bottom-right'] as const) {
      const a = attentionReference(q, k, v, { keyLengths: [3, 6], isCausal: true, causalAlignment });
      const b = attentionReference(q, k, v, { attnMask: padding, isCausal: true, causalAlignment });
      expect(maxAbsDiff(a.out, b.out).value).toBe(0);
    }
    // Two packed sequences: (3 queries, 4 keys) and (2 queries, 6 keys), 2 heads, bottom-right causal.
    const [pq, pk, pv] = [random([5, 2, 8]), random([10, 2, 8]), random([10, 2, 8])];
    const options = { isCausal: true, causalAlignment: 'bottom-right' as const };
    const packed = attentionReference(pq, pk, pv, { ...options, cuSeqlensQ: [0, 3, 5], cuSeqlensK: [0, 4, 10] });
    const slice = (t: HostTensor, from: number, to: number): HostTensor => ({
      data: Array.from(t.data).slice(from * 16, to * 16),
      shape: [1, to - from, 2, 8],
      strides: [0, 16, 8, 1],
    });
    const toBhld = (t: HostTensor): HostTensor => ({ ...t, shape: [1, 2, t.shape[1]!, 8], strides: [0, 8, 16, 1] });
    const first = attentionReference(toBhld(slice(pq, 0, 3)), toBhld(slice(pk, 0, 4)), toBhld(slice(pv, 0, 4)), options);
    const second = attentionReference(toBhld(slice(pq, 3, 5)), toBhld(slice(pk, 4, 10)), toBhld(slice(pv, 4, 10)), options);
    // packed out is [5, 2, 8]; the separate outs are [1, 2, Lb, 8].
    for (const [part, start, rows] of [
      [first, 0, 3],
      [second, 3, 2],
    ] as const) {
      for (let h = 0; h < 2; h++) {
        for (let i = 0; i < rows; i++) {
          for (let d = 0; d < 8; d++) {
            expect(packed.out[((start + i) * 2 + h) * 8 + d]).toBe(part.out[(h * rows + i) * 8 + d]);
          }
        }
      }
    }
    expect(packed.logsumexpShape).toEqual([2, 2, 3]);
    expect(packed.logsumexp[(1 * 2 + 0) * 3 + 2]).toBe(Number.NEGATIVE_INFINITY); // row 2 of a 2-row sequence
  });

  it('dropout keeps exactly the weights the attention dropout stream keeps, scaled by 1 / (1 − p)', () => {
    const [q, k, v] = [random([2, 3, 4, 8]), random([2, 3, 9, 8]), random([2, 3, 9, 8])];
    const p = 0.3;
    const dropped = attentionReference(q, k, v, { dropoutP: p, dropoutSeed: 1234, dropoutOffset: 5, needWeights: true });
    const plain = attentionReference(q, k, v, { needWeights: true });
    const stream = attentionDropoutStream(1234, 5);
    const threshold = attentionDropoutThreshold(p);
    let kept = 0;
    for (let b = 0; b < 2; b++) {
      for (let h = 0; h < 3; h++) {
        for (let i = 0; i < 4; i++) {
          for (let j = 0; j < 9; j++) {
            const index = ((b * 3 + h) * 4 + i) * 9 + j;
            const keep = attentionKeep(stream, threshold, b * 3 + h, i, j);
            kept += keep ? 1 : 0;
            expect(dropped.weights![index]).toBeCloseTo(keep ? plain.weights![index]! / (1 - p) : 0, 14);
          }
        }
      }
    }
    expect(kept).toBeGreaterThan(0);
    expect(kept).toBeLessThan(216);
  });

  it('gradients (softcap, additive mask, dropout, bottom-right window) match central differences', () => {
    const [q, k, v, g] = [random([1, 2, 3, 5]), random([1, 1, 6, 5]), random([1, 1, 6, 4]), random([1, 2, 3, 4])];
    const mask = random([2, 1, 6]);
    const options = {
      enableGqa: true,
      softcap: 0.8,
      attnMask: mask,
      dropoutP: 0.2,
      dropoutSeed: 99,
      window: [2, 1] as const,
      causalAlignment: 'bottom-right' as const,
      scale: 1.3,
    };
    const grads = attentionReferenceBackward(q, k, v, g, options);
    const h = 1e-6;
    const check = (name: 'q' | 'k' | 'v' | 'mask', gradient: Float64Array) => {
      const base = { q, k, v, mask };
      const target = base[name];
      for (let index = 0; index < target.data.length; index++) {
        const bumped = (delta: number) => {
          const data = Float64Array.from(target.data);
          data[index] = data[index]! + delta;
          const inputs = { ...base, [name]: { ...target, data } };
          return loss(attentionReference(inputs.q, inputs.k, inputs.v, { ...options, attnMask: inputs.mask }).out, g);
        };
        const numeric = (bumped(h) - bumped(-h)) / (2 * h);
        expect(gradient[index], `${name}[${index}]`).toBeCloseTo(numeric, 6);
      }
    };
    check('q', grads.dq);
    check('k', grads.dk);
    check('v', grads.dv);
    expect(grads.dMaskShape).toEqual([2, 1, 6]);
    check('mask', grads.dMask!);
  });

  it('same-precision references round: f32 and f16 differ from f64 by about their epsilon', () => {
    const [q, k, v] = [random([1, 2, 17, 16]), random([1, 2, 17, 16]), random([1, 2, 17, 16])];
    const exact = attentionReference(q, k, v).out;
    const f32 = maxAbsDiff(attentionReference(q, k, v, { precision: 'f32' }).out, exact).value;
    const f16 = maxAbsDiff(attentionReference(q, k, v, { precision: 'f16' }).out, exact).value;
    expect(f32).toBeGreaterThan(0);
    expect(f32).toBeLessThan(1e-5);
    expect(f16).toBeGreaterThan(f32 * 100);
    expect(f16).toBeLessThan(5e-2);
  });

  it('rejects bad input with typed errors naming the shapes', () => {
    const [q, k, v] = [random([1, 2, 3, 8]), random([1, 2, 5, 8]), random([1, 2, 5, 8])];
    expect(() => attentionReference(q, k, v, { attnMask: random([3, 4]) })).toThrow(ShapeError);
    expect(() => attentionReference(q, k, v, { attnMask: random([3, 4]) })).toThrow(/attnMask \[3, 4\]/);
    expect(() => attentionReference(random([1, 3, 3, 8]), k, v, { enableGqa: true })).toThrow(/Hq = 3/);
    expect(() => attentionReference(q, random([1, 2, 5, 7]), v)).toThrow(/k \[1, 2, 5, 7\]/);
    expect(() => attentionReference(q, k, v, { dropoutP: 1 })).toThrow(InvalidArgumentError);
    expect(() => attentionReference({ data: [1, 2], shape: [1, 1, 1, 8] }, k, v)).toThrow(/has 2 elements/);
    expect(() => attentionReferenceBackward(q, k, v, random([1, 2, 3, 7]))).toThrow(/gradOut/);
  });
});
