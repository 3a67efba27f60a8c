/**
 * PyTorch's own SDPA outputs and gradients (/work/shared/fixtures/torch-sdpa, float64 from f32 inputs) against
 * flash forward and backward, with the shared tolerance rule (the f32 same-precision reference sets the bound).
 */
import { gpu } from '../test/test-device';
import { attentionReference, attentionReferenceBackward, type HostTensor } from '@webattn/reference';
import { expectAttentionClose, fixtureOptions, loadTorchSdpaFixtures } from '@webattn/reference/testing';
import { tensor, type AttentionOptions } from '@webattn/tensor';
import { expectNoGpuErrors } from '@webattn/tensor/testing';
import { afterAll, describe, it } from 'vitest';
import { poisonPool } from '../test/flash-harness';
import { flashAttention, flashAttentionGrad } from './flash-attention';

const fixtures = await loadTorchSdpaFixtures();
afterAll(() => gpu?.destroy());

describe.skipIf(!gpu || !fixtures)('flash matches PyTorch SDPA fixtures', () => {
  for (const fixture of fixtures ?? []) {
    it(fixture.name, async () => {
      const device = gpu!;
      const { q, k, v, grad_out: gradOut } = fixture.inputs as Record<string, HostTensor>;
      const referenceOptions = fixtureOptions(fixture);
      const upload = (t: HostTensor) => tensor(device, t.data, t.shape, { dtype: t.dtype === 'bool' ? 'bool' : 'f32' });
      const [qt, kt, vt] = [upload(q!), upload(k!), upload(v!)];
      const maskTensor = referenceOptions.attnMask ? upload(referenceOptions.attnMask) : undefined;
      const { attnMask: _mask, ...rest } = referenceOptions;
      const options: AttentionOptions = { ...rest, ...(maskTensor ? { attnMask: maskTensor } : {}) };
      await poisonPool(device, [qt.size, kt.size, vt.size]);
      const { out, logsumexp } = await expectNoGpuErrors(device, () => flashAttention(qt, kt, vt, options));
      const same = attentionReference(q!, k!, v!, { ...referenceOptions, precision: 'f32' });
      expectAttentionClose(`${fixture.name}: out`, await out.toArray(), fixture.expected.out!.data, same.out, 'f32');
      if (gradOut && fixture.expected.grad_q) {
        const gradTensor = upload(gradOut);
        const grads = await expectNoGpuErrors(device, () => flashAttentionGrad(qt, kt, vt, out, logsumexp, gradTensor, options));
        const sameGrads = attentionReferenceBackward(q!, k!, v!, gradOut, { ...referenceOptions, precision: 'f32' });
        expectAttentionClose(`${fixture.name}: dq`, await grads.dq.toArray(), fixture.expected.grad_q.data, sameGrads.dq, 'f32');
        expectAttentionClose(`${fixture.name}: dk`, await grads.dk.toArray(), fixture.expected.grad_k!.data, sameGrads.dk, 'f32');
        expectAttentionClose(`${fixture.name}: dv`, await grads.dv.toArray(), fixture.expected.grad_v!.data, sameGrads.dv, 'f32');
        for (const t of [gradTensor, grads.dq, grads.dk, grads.dv]) t.dispose();
      }
      for (const t of [qt, kt, vt, out, logsumexp]) t.dispose();
      maskTensor?.dispose();
    });
  }
});
