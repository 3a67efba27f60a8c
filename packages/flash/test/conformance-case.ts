import {
  caseExpectation,
  caseTensors,
  checkCaseBackward,
  checkCaseForward,
  type AttentionCase,
  type AttentionCaseTensors,
} from '@webattn/reference/testing';
import type { Device } from '@webattn/tensor';
import { expectNoGpuErrors, freshSeed } from '@webattn/tensor/testing';
import { flashAttention, flashAttentionGrad } from '../src/flash-attention';
import { poisonPool } from './flash-harness';

/**
 * Runs one conformance case on flash with fresh inputs: the forward (out, logsumexp) and, with `backward` (and a
 * case that has one), the backward, each against the case's float64 expectation, with the pool poisoned first.
 * Flash never materialises the attention weights: cases that ask for them run without `needWeights`. `inspect`
 * sees the case's tensors before anything runs.
 */
export async function checkFlashCase(
  device: Device,
  kase: AttentionCase,
  options: { readonly backward: boolean; readonly inspect?: (tensors: AttentionCaseTensors) => void },
): Promise<void> {
  const seed = freshSeed();
  const generated = kase.generate(seed);
  const { needWeights: _weights, ...attentionOptions } = generated.options;
  const inputs = { ...generated, options: attentionOptions };
  const tensors = caseTensors(device, inputs);
  options.inspect?.(tensors);
  const expected = caseExpectation(kase, inputs);
  await poisonPool(device, [tensors.gradOut.size, tensors.q.size, tensors.k.size, tensors.v.size]);
  const forward = await expectNoGpuErrors(device, () => flashAttention(tensors.q, tensors.k, tensors.v, tensors.options));
  checkCaseForward(kase, expected, { out: await forward.out.toArray(), logsumexp: await forward.logsumexp.toArray() }, seed);
  if (kase.backward && options.backward) {
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
}
