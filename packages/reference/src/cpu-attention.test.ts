import { DeviceMismatchError, ShapeError, cpuDevice, tensor } from '@webattn/tensor';
import { freshSeed, openTestDevice, randomValues } from '@webattn/tensor/testing';
import { afterAll, describe, expect, it } from 'vitest';
import { attentionCases } from './attention-cases';
import { caseExpectation, caseTensors, checkCaseBackward, checkCaseForward } from './attention-case-check';
import { attentionReferenceForTensors } from './attention-reference';
import { cpuAttention, cpuAttentionBackward } from './cpu-attention';

const cpu = cpuDevice();

describe('cpu backend (float64 oracle on CPU tensors): the attention conformance suite', () => {
  for (const kase of attentionCases) {
    it(kase.name, async () => {
      const seed = freshSeed();
      const inputs = kase.generate(seed);
      const expected = caseExpectation(kase, inputs);
      const t = caseTensors(cpu, inputs);
      const result = cpuAttention(t.q, t.k, t.v, t.options);
      expect(result.out.dtype).toBe(kase.dtype);
      checkCaseForward(
        kase,
        expected,
        {
          out: await result.out.toArray(),
          logsumexp: await result.logsumexp.toArray(),
          ...(result.weights ? { weights: await result.weights.toArray() } : {}),
        },
        seed,
      );
      if (kase.backward) {
        const grads = cpuAttentionBackward(t.q, t.k, t.v, result.out, result.logsumexp, t.gradOut, t.options);
        checkCaseBackward(
          kase,
          expected,
          { dq: await grads.dq.toArray(), dk: await grads.dk.toArray(), dv: await grads.dv.toArray() },
          seed,
        );
      }
    });
  }
});

const gpu = await openTestDevice();
afterAll(() => gpu?.destroy());

describe('cpu backend: contract errors', () => {
  it('checks backward shapes and refuses GPU tensors', async () => {
    const q = tensor(cpu, randomValues(2 * 3 * 8, freshSeed()), [1, 2, 3, 8]);
    const { out, logsumexp } = cpuAttention(q, q, q);
    expect(() => cpuAttentionBackward(q, q, q, out, logsumexp, tensor(cpu, new Float32Array(6), [1, 2, 3, 1]))).toThrow(
      /gradOut \[1, 2, 3, 1\] must have shape \[1, 2, 3, 8\]/,
    );
    expect(() => cpuAttentionBackward(q, q, q, out, logsumexp, tensor(cpu, new Float32Array(6), [1, 2, 3, 1]))).toThrow(
      ShapeError,
    );
    if (gpu) {
      const onGpu = await q.to(gpu);
      expect(() => cpuAttention(onGpu, onGpu, onGpu)).toThrow(DeviceMismatchError);
      const reference = await attentionReferenceForTensors(onGpu, onGpu, onGpu, { isCausal: true });
      const local = cpuAttention(q, q, q, { isCausal: true });
      const values = await local.out.toArray();
      reference.out.forEach((value, i) => expect(values[i]).toBeCloseTo(value, 6));
    }
  });
});
