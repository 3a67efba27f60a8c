/**
 * The subgroup-matrix forward (flash-forward-matrix.wgsl) on the conformance suite in f16, forward and the backward
 * that follows it, with the matrix builtins emulated (lavapipe has no subgroup matrices; scripts/gpu-check.ts runs
 * the real ones on the GPU machine): its indexing, barriers, lazy rescaling, masks, dropout and NaN handling.
 */
import { gpu } from '../test/test-device';
import {
  attentionCases,
  caseExpectation,
  caseTensors,
  checkCaseBackward,
  checkCaseForward,
  inHalfPrecision,
} from '@webattn/reference/testing';
import { expectNoGpuErrors, freshSeed } from '@webattn/tensor/testing';
import { afterAll, describe, expect, it } from 'vitest';
import { poisonPool } from '../test/flash-harness';
import { flashAttention, flashAttentionGrad } from './flash-attention';
import { recordingTiles } from './flash-tiles';
import { emulateSubgroupMatrices } from './subgroup-matrix-emulation';

afterAll(() => gpu?.destroy());

const cases = attentionCases.filter((kase) => kase.dtype === 'f32').map(inHalfPrecision);

describe.skipIf(!gpu?.caps.shaderF16)('subgroup-matrix forward (emulated builtins)', () => {
  it('is the f16 default where subgroup matrices exist', () => {
    emulateSubgroupMatrices(gpu!.gpu);
    const tiles = recordingTiles(gpu!.gpu, { dtype: 'f16', headDimQk: 64, headDimV: 64 }, gpu!.caps);
    expect(tiles?.forward.kernel).toBe('matrix');
    // Its backward: the tiled family.
    expect(tiles?.tiledKeyValue).not.toBeNull();
    expect(recordingTiles(gpu!.gpu, { dtype: 'f32', headDimQk: 64, headDimV: 64 }, gpu!.caps)?.forward.kernel).not.toBe('matrix');
  });

  for (const kase of cases) {
    it(kase.name, async () => {
      const device = gpu!;
      emulateSubgroupMatrices(device.gpu);
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
