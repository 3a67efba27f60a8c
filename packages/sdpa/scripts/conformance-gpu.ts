/**
 * The conformance suite through scaledDotProductAttention outside vitest, for a real GPU (the GPU machine has no
 * test runner): every case on every backend that accepts it, forward and backward through autograd, checked with
 * the shared tolerance rule. Prints one line per case and backend and exits 1 on any failure.
 *   node tools/bench/scripts/bundle.mjs packages/sdpa/scripts/conformance-gpu.ts .gpu/sdpa-conformance.mjs
 *   bash .gpu/remote.sh node .gpu/sdpa-conformance.mjs
 */
import {
  attentionCases,
  caseExpectation,
  caseTensors,
  checkCaseBackward,
  checkCaseForward,
} from '@webattn/reference/testing';
import { createDevice, type Tensor } from '@webattn/tensor';
import { freshSeed } from '@webattn/tensor/testing';
import { DECODE_CASES } from '../src/decode-cases';
import { onSdpaDispatch } from '../src/dispatch-log';
import { explainSdpa, scaledDotProductAttention, scaledDotProductAttentionWithWeights } from '../src/sdpa';

const device = await createDevice({ requireGpu: true });
console.log(`device: ${device.info.adapter}`);
let failures = 0;
const ran: string[] = [];
onSdpaDispatch((event) => ran.push(`${event.phase}:${event.backend}`));
for (const kase of [...attentionCases, ...DECODE_CASES]) {
  const seed = freshSeed();
  const inputs = kase.generate(seed);
  const expected = caseExpectation(kase, inputs);
  for (const backend of ['flash', 'efficient', 'math'] as const) {
    const tensors = caseTensors(device, inputs);
    const { needWeights = false, ...options } = tensors.options;
    const withWeights = needWeights && backend === 'math';
    const call = { ...options, backends: [backend] };
    const made: Tensor[] = [];
    ran.length = 0;
    try {
      if (!explainSdpa(tensors.q, tensors.k, tensors.v, { ...call, needWeights: withWeights, requiresGrad: kase.backward }).chosen) {
        console.log(`skip  ${backend.padEnd(9)} ${kase.name}`);
        continue;
      }
      for (const t of [tensors.q, tensors.k, tensors.v]) t.requiresGrad = kase.backward;
      let out: Tensor;
      let weights: Tensor | undefined;
      if (withWeights) ({ output: out, weights } = scaledDotProductAttentionWithWeights(tensors.q, tensors.k, tensors.v, call));
      else out = scaledDotProductAttention(tensors.q, tensors.k, tensors.v, call);
      made.push(out, ...(weights ? [weights] : []));
      checkCaseForward(kase, expected, { out: await out.toArray(), ...(weights ? { weights: await weights.toArray() } : {}) }, seed);
      if (kase.backward) {
        out.backward(tensors.gradOut);
        const [dq, dk, dv] = await Promise.all([tensors.q, tensors.k, tensors.v].map((t) => t.grad!.toArray()));
        checkCaseBackward(kase, expected, { dq: dq!, dk: dk!, dv: dv! }, seed);
      }
      await device.sync();
      console.log(`pass  ${backend.padEnd(9)} ${kase.name} [${ran.join(' ')}]`);
    } catch (error) {
      failures++;
      console.log(`FAIL  ${backend.padEnd(9)} ${kase.name}: ${(error as Error).message}`);
    } finally {
      made.forEach((t) => t.dispose());
      [tensors.q, tensors.k, tensors.v].forEach((t) => t.grad?.dispose());
      tensors.dispose();
    }
  }
}
console.log(failures ? `${failures} failures` : 'all passed');
device.destroy();
process.exit(failures ? 1 : 0);
