import { relativeL2 } from '@webattn/tensor/testing';
import { describe, expect, it } from 'vitest';
import { attentionReference, attentionReferenceBackward } from './attention-reference';
import { fixtureOptions, loadTorchSdpaFixtures } from './torch-fixtures';

const fixtures = await loadTorchSdpaFixtures();

describe.skipIf(!fixtures)('float64 oracle against PyTorch 2.11 (../shared/fixtures/torch-sdpa)', () => {
  it('found the SDPA fixtures', () => expect(fixtures!.length).toBeGreaterThanOrEqual(10));
  for (const fixture of fixtures ?? []) {
    it(`${fixture.name}: out${fixture.expected.grad_q ? ' and gradients' : ''} within 1e-10 relative L2`, () => {
      const { q, k, v, grad_out: gradOut } = fixture.inputs;
      const options = fixtureOptions(fixture);
      const result = attentionReference(q!, k!, v!, options);
      expect(result.outShape).toEqual(fixture.expected.out!.shape);
      expect(relativeL2(result.out, fixture.expected.out!.data)).toBeLessThan(1e-10);
      if (fixture.expected.grad_q && gradOut) {
        const grads = attentionReferenceBackward(q!, k!, v!, gradOut, options);
        expect(relativeL2(grads.dq, fixture.expected.grad_q.data)).toBeLessThan(1e-10);
        expect(relativeL2(grads.dk, fixture.expected.grad_k!.data)).toBeLessThan(1e-10);
        expect(relativeL2(grads.dv, fixture.expected.grad_v!.data)).toBeLessThan(1e-10);
      }
    });
  }
});
