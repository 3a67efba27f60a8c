/**
 * The shared attention conformance suite (@webattn/reference/testing) on the flash backend, forward (out and
 * logsumexp) and backward. Flash never materialises the attention weights: cases that also ask for them
 * ('weights') run without `needWeights` and check everything else.
 */
import { gpu } from '../test/test-device';
import {
  attentionCases,
  caseExpectation,
  caseTensors,
  checkCaseBackward,
  checkCaseForward,
} from '@webattn/reference/testing';
import { expectNoGpuErrors, freshSeed } from '@webattn/tensor/testing';
import { afterAll, describe, it } from 'vitest';
import { poisonPool } from '../test/flash-harness';
import { flashAttention, flashAttentionGrad } from './flash-attention';

afterAll(() => gpu?.destroy());

describe.skipIf(!gpu)('flash passes the attention conformance suite', () => {
  for (const kase of attentionCases) {
    it(kase.name, async () => {
      const device = gpu!;
      if (kase.dtype === 'f16' && !device.caps.shaderF16) return;
      const seed = freshSeed();
      const generated = kase.generate(seed);
      const { needWeights: _weights, ...options } = generated.options;
      const inputs = { ...generated, options };
      const tensors = caseTensors(device, inputs);
      const expected = caseExpectation(kase, inputs);
      await poisonPool(device, [tensors.gradOut.size, tensors.q.size, tensors.k.size, tensors.v.size]);
      const forward = await expectNoGpuErrors(device, () => flashAttention(tensors.q, tensors.k, tensors.v, tensors.options));
      checkCaseForward(kase, expected, { out: await forward.out.toArray(), logsumexp: await forward.logsumexp.toArray() }, seed);
      if (kase.backward) {
        await poisonPool(device, [tensors.q.size, tensors.k.size, tensors.v.size]);
        const grads = await expectNoGpuErrors(device, () =>
          flashAttentionGrad(tensors.q, tensors.k, tensors.v, forward.out, forward.logsumexp, tensors.gradOut, tensors.options),
        );
        checkCaseBackward(kase, expected, { dq: await grads.dq.toArray(), dk: await grads.dk.toArray(), dv: await grads.dv.toArray() }, seed);
        for (const t of [grads.dq, grads.dk, grads.dv]) t.dispose();
      }
      forward.out.dispose();
      forward.logsumexp.dispose();
      tensors.dispose();
    });
  }
});
