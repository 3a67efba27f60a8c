/**
 * The shared attention conformance suite (@webattn/reference/testing) through scaledDotProductAttention, once per
 * backend, each forced with the `backends` option: forward (weights where the backend makes them) and backward
 * through autograd. A case a backend cannot run is skipped with the dispatcher's own rejection messages, and the
 * table of skips is a snapshot, so a change in what runs where shows up in review. Plus decode cases (≥ 1024
 * keys) that reach the split-KV backend and its backward on math.
 */
import {
  attentionCases,
  caseExpectation,
  caseTensors,
  checkCaseBackward,
  checkCaseForward,
  type AttentionCase,
  type AttentionCaseExpectation,
  type AttentionCaseInputs,
} from '@webattn/reference/testing';
import { cpuDevice, type Device, type Tensor } from '@webattn/tensor';
import { expectNoGpuErrors, freshSeed, openTestDevice } from '@webattn/tensor/testing';
import { afterAll, describe, expect, it } from 'vitest';
import type { SdpaBackendName } from './backend';
import { DECODE_CASES } from './decode-cases';
import { onSdpaDispatch, type SdpaDispatchEvent } from './dispatch-log';
import { SDPA_BACKENDS } from './registry';
import { explainSdpa, scaledDotProductAttention, scaledDotProductAttentionWithWeights } from './sdpa';

const gpu = await openTestDevice();
afterAll(() => gpu?.destroy());

const cases: readonly AttentionCase[] = [...attentionCases, ...DECODE_CASES];

/**
 * One fresh seed per case and run, shared by the four backends, so the float64 oracle (the slow part on two CPU
 * cores) is computed once per case rather than once per backend.
 */
const prepared = new Map<string, { seed: number; inputs: AttentionCaseInputs; expected: AttentionCaseExpectation }>();
function prepare(kase: AttentionCase) {
  let entry = prepared.get(kase.name);
  if (!entry) {
    const seed = freshSeed();
    const inputs = kase.generate(seed);
    entry = { seed, inputs, expected: caseExpectation(kase, inputs) };
    prepared.set(kase.name, entry);
  }
  return entry;
}

/** Skips decided here rather than by the dispatcher, each with its reason. */
function plannedSkip(backend: SdpaBackendName, kase: AttentionCase): string | null {
  if (backend === 'cpu' && kase.exercises.includes('long-sequence')) {
    return 'the cpu backend is the float64 reference itself; its long case (≈30 s on two cores) would only compare it with itself';
  }
  return null;
}

async function runCase(device: Device, backend: SdpaBackendName, kase: AttentionCase, skips: string[]): Promise<void> {
  const planned = plannedSkip(backend, kase);
  if (planned) {
    skips.push(`${kase.name} — ${planned}`);
    return;
  }
  const { seed, inputs, expected } = prepare(kase);
  const tensors = caseTensors(device, inputs);
  const { needWeights = false, ...options } = tensors.options;
  const producesWeights = SDPA_BACKENDS.find((item) => item.name === backend)!.producesWeights;
  const withWeights = needWeights && producesWeights;
  const explanation = explainSdpa(tensors.q, tensors.k, tensors.v, {
    ...options,
    needWeights: withWeights,
    requiresGrad: kase.backward,
    backends: [backend],
  });
  if (!explanation.chosen) {
    const report = explanation.backends.find((item) => item.name === backend)!;
    skips.push(`${kase.name} — ${report.rejections.map((item) => item.message).join('; ')}`);
    tensors.dispose();
    return;
  }
  if (needWeights && !producesWeights) skips.push(`${kase.name} — weights not checked (${backend} does not return them)`);
  const events: SdpaDispatchEvent[] = [];
  const stop = onSdpaDispatch((event) => events.push(event));
  const inputsWithGrad = [tensors.q, tensors.k, tensors.v];
  for (const t of inputsWithGrad) t.requiresGrad = kase.backward;
  const made: Tensor[] = [];
  try {
    await (device.isGpu ? (fn: () => Promise<void>) => expectNoGpuErrors(device, fn) : (fn: () => Promise<void>) => fn())(async () => {
      const call = { ...options, backends: [backend] };
      let out: Tensor;
      let weights: Tensor | undefined;
      if (withWeights) {
        ({ output: out, weights } = scaledDotProductAttentionWithWeights(tensors.q, tensors.k, tensors.v, call));
        made.push(weights);
      } else {
        out = scaledDotProductAttention(tensors.q, tensors.k, tensors.v, call);
      }
      made.push(out);
      checkCaseForward(kase, expected, { out: await out.toArray(), ...(weights ? { weights: await weights.toArray() } : {}) }, seed);
      if (kase.backward) {
        out.backward(tensors.gradOut);
        const [dq, dk, dv] = await Promise.all(inputsWithGrad.map((t) => t.grad!.toArray()));
        checkCaseBackward(kase, expected, { dq: dq!, dk: dk!, dv: dv! }, seed);
      }
    });
    const phases = events.map((event) => `${event.phase}:${event.backend}`);
    const backwardOn = backend === 'efficient' ? 'math' : backend;
    expect(phases).toEqual(kase.backward ? [`forward:${backend}`, `backward:${backwardOn}`] : [`forward:${backend}`]);
  } finally {
    stop();
    made.forEach((t) => t.dispose());
    inputsWithGrad.forEach((t) => t.grad?.dispose());
    tensors.dispose();
  }
}

for (const backend of SDPA_BACKENDS.map((item) => item.name)) {
  const device = backend === 'cpu' ? cpuDevice() : gpu;
  describe.skipIf(!device)(`conformance through the dispatcher: ${backend}`, () => {
    const skips: string[] = [];
    for (const kase of cases) {
      it(kase.name, () => runCase(device!, backend, kase, skips));
    }
    it('skips, with the dispatcher’s reasons', () => {
      expect(skips).toMatchSnapshot();
    });
  });
}
