/**
 * PyTorch's own SDPA outputs (/work/shared/fixtures/torch-sdpa, float64 from float32 inputs) through
 * scaledDotProductAttention — whichever backend the dispatcher picks — on WebGPU and on CPU tensors: the forward,
 * and the backward through autograd (q, k, v requiresGrad; sum(out * gradOut).backward(); compare the grads).
 * Tolerances follow the project's rule: a small multiple of the same-precision (f32) reference's own error.
 */
import { attentionReference, attentionReferenceBackward, type HostTensor } from '@webattn/reference';
import { expectAttentionClose, fixtureOptions, loadTorchSdpaFixtures } from '@webattn/reference/testing';
import { cpuDevice, mul, sum, tensor, type Device, type Tensor } from '@webattn/tensor';
import { expectNoGpuErrors, openTestDevice } from '@webattn/tensor/testing';
import { afterAll, describe, expect, it } from 'vitest';
import { onSdpaDispatch, type SdpaDispatchEvent } from './dispatch-log';
import { scaledDotProductAttention } from './sdpa';

const gpu = await openTestDevice();
afterAll(() => gpu?.destroy());
const fixtures = (await loadTorchSdpaFixtures()) ?? [];

function toTensor(device: Device, host: HostTensor, requiresGrad = false): Tensor {
  const dtype = host.dtype === 'bool' ? 'bool' : 'f32';
  return tensor(device, host.data, host.shape, { dtype, requiresGrad });
}

const devices: [string, Device | null][] = [
  ['WebGPU', gpu],
  ['CPU tensors', cpuDevice()],
];

for (const [where, device] of devices) {
  describe.skipIf(!device || fixtures.length === 0)(`PyTorch SDPA fixtures through the dispatcher (${where})`, () => {
    for (const fixture of fixtures) {
      it(fixture.name, async () => {
        const { inputs, expected } = fixture;
        const { attnMask: hostMask, ...plainOptions } = fixtureOptions(fixture);
        const hostOptions = { ...plainOptions, ...(hostMask ? { attnMask: hostMask } : {}) };
        const withGrad = expected.grad_q !== undefined;
        const q = toTensor(device!, inputs.q!, withGrad);
        const k = toTensor(device!, inputs.k!, withGrad);
        const v = toTensor(device!, inputs.v!, withGrad);
        const mask = hostMask ? toTensor(device!, hostMask) : undefined;
        const options = { ...plainOptions, ...(mask ? { attnMask: mask } : {}) };
        const events: SdpaDispatchEvent[] = [];
        const stop = onSdpaDispatch((event) => events.push(event));
        const made: Tensor[] = [q, k, v, ...(mask ? [mask] : [])];
        try {
          const run = async () => {
            const out = scaledDotProductAttention(q, k, v, options);
            made.push(out);
            const same = attentionReference(inputs.q!, inputs.k!, inputs.v!, { ...hostOptions, precision: 'f32' });
            expectAttentionClose(`${fixture.name} out (${events[0]?.backend})`, await out.toArray(), expected.out!.data, same.out, 'f32');
            if (!withGrad) return;
            const gradOut = toTensor(device!, inputs.grad_out!);
            const loss = sum(mul(out, gradOut));
            made.push(gradOut, loss);
            loss.backward();
            const sameGrads = attentionReferenceBackward(inputs.q!, inputs.k!, inputs.v!, inputs.grad_out!, { ...hostOptions, precision: 'f32' });
            for (const [name, t, torch, reference] of [
              ['grad_q', q, expected.grad_q!, sameGrads.dq],
              ['grad_k', k, expected.grad_k!, sameGrads.dk],
              ['grad_v', v, expected.grad_v!, sameGrads.dv],
            ] as const) {
              expectAttentionClose(`${fixture.name} ${name} (${events[1]?.backend})`, await t.grad!.toArray(), torch.data, reference, 'f32');
            }
          };
          await (device!.isGpu ? expectNoGpuErrors(device!, run) : run());
          const forward = events.find((event) => event.phase === 'forward')!;
          expect(forward.backend).toBe(device!.isGpu ? forward.backend : 'cpu');
          if (withGrad) {
            expect(events.map((event) => event.phase)).toEqual(['forward', 'backward']);
            expect(events[1]!.backend).toBe(forward.backend === 'efficient' ? 'math' : forward.backend);
          }
        } finally {
          stop();
          made.forEach((t) => t.dispose());
          [q, k, v].forEach((t) => t.grad?.dispose());
        }
      });
    }
  });
}
