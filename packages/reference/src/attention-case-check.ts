import { tensor, type AttentionOptions, type Device, type Tensor } from '@webattn/tensor';
import type { AttentionCase, AttentionCaseInputs } from './attention-cases';
import {
  attentionReference,
  attentionReferenceBackward,
  type AttentionReferenceGradients,
  type AttentionReferenceResult,
} from './attention-reference';
import { compareAttention, expectAttentionClose, type AttentionComparison } from './attention-tolerance';
import type { HostTensor } from './host-tensor';

export interface AttentionCaseTensors {
  readonly q: Tensor;
  readonly k: Tensor;
  readonly v: Tensor;
  readonly gradOut: Tensor;
  readonly options: AttentionOptions;
  /** Disposes every tensor made here. */
  dispose(): void;
}

/** The case's inputs as tensors on `device` (blhd cases as transposed views of [B, L, H, D] memory). */
export function caseTensors(device: Device, inputs: AttentionCaseInputs): AttentionCaseTensors {
  const made: Tensor[] = [];
  const make = (t: HostTensor, dtype: 'f32' | 'f16' | 'bool', asBlhd = false): Tensor => {
    if (asBlhd && inputs.memoryOrder === 'blhd') {
      const [b, h, l, d] = t.shape as [number, number, number, number];
      const memory = tensor(device, t.data, [b, l, h, d], { dtype });
      const view = memory.transpose(1, 2);
      made.push(memory, view);
      return view;
    }
    const result = tensor(device, t.data, t.shape, { dtype });
    made.push(result);
    return result;
  };
  const { attnMask, precision: _precision, ...rest } = inputs.options;
  const options: AttentionOptions = {
    ...rest,
    ...(attnMask ? { attnMask: make(attnMask, attnMask.dtype === 'bool' ? 'bool' : attnMask.dtype === 'f16' ? 'f16' : 'f32') } : {}),
  };
  return {
    q: make(inputs.q, inputs.dtype, true),
    k: make(inputs.k, inputs.dtype, true),
    v: make(inputs.v, inputs.dtype, true),
    gradOut: make(inputs.gradOut, inputs.dtype),
    options,
    dispose: () => made.forEach((t) => t.dispose()),
  };
}

export interface AttentionCaseExpectation {
  readonly oracle: AttentionReferenceResult;
  readonly samePrecision: AttentionReferenceResult;
  readonly oracleGradients?: AttentionReferenceGradients;
  readonly samePrecisionGradients?: AttentionReferenceGradients;
}

/** The float64 oracle and the same-precision reference for a case (gradients too when it checks backward). */
export function caseExpectation(kase: AttentionCase, inputs: AttentionCaseInputs): AttentionCaseExpectation {
  const { q, k, v, gradOut, options } = inputs;
  const same = { ...options, precision: inputs.dtype };
  return {
    oracle: attentionReference(q, k, v, options),
    samePrecision: attentionReference(q, k, v, same),
    ...(kase.backward
      ? {
          oracleGradients: attentionReferenceBackward(q, k, v, gradOut, options),
          samePrecisionGradients: attentionReferenceBackward(q, k, v, gradOut, same),
        }
      : {}),
  };
}

export interface AttentionForwardValues {
  readonly out: ArrayLike<number>;
  readonly logsumexp?: ArrayLike<number>;
  readonly weights?: ArrayLike<number>;
}

export interface AttentionBackwardValues {
  readonly dq: ArrayLike<number>;
  readonly dk: ArrayLike<number>;
  readonly dv: ArrayLike<number>;
}

/** What a conformance case compares. */
export type AttentionQuantity = 'out' | 'logsumexp' | 'weights' | 'dq' | 'dk' | 'dv';

/**
 * One quantity of a case compared without throwing (for reports such as the GPU-machine scripts): the case's
 * probability rule for what is computed from the probabilities, the default rule for the logsumexp.
 */
export function compareCaseQuantity(
  kase: AttentionCase,
  quantity: AttentionQuantity,
  actual: ArrayLike<number>,
  oracle: ArrayLike<number>,
  samePrecision: ArrayLike<number>,
): AttentionComparison {
  return compareAttention(actual, oracle, samePrecision, kase.dtype, quantity === 'logsumexp' ? undefined : kase.probabilityRule);
}

/** Applies the tolerance rule to a backend's forward outputs (row-major, as the oracle lays them out). */
export function checkCaseForward(
  kase: AttentionCase,
  expected: AttentionCaseExpectation,
  actual: AttentionForwardValues,
  seed: number,
): void {
  const label = (what: string) => `${kase.name}: ${what}`;
  expectAttentionClose(label('out'), actual.out, expected.oracle.out, expected.samePrecision.out, kase.dtype, seed, kase.probabilityRule);
  if (actual.logsumexp) {
    expectAttentionClose(
      label('logsumexp'),
      actual.logsumexp,
      expected.oracle.logsumexp,
      expected.samePrecision.logsumexp,
      kase.dtype,
      seed,
    );
  }
  if (actual.weights && expected.oracle.weights && expected.samePrecision.weights) {
    expectAttentionClose(
      label('weights'),
      actual.weights,
      expected.oracle.weights,
      expected.samePrecision.weights,
      kase.dtype,
      seed,
      kase.probabilityRule,
    );
  }
}

export function checkCaseBackward(
  kase: AttentionCase,
  expected: AttentionCaseExpectation,
  actual: AttentionBackwardValues,
  seed: number,
): void {
  const oracle = expected.oracleGradients;
  const same = expected.samePrecisionGradients;
  if (!oracle || !same) throw new Error(`${kase.name} does not check backward (case.backward is false)`);
  for (const name of ['dq', 'dk', 'dv'] as const) {
    expectAttentionClose(`${kase.name}: ${name}`, actual[name], oracle[name], same[name], kase.dtype, seed, kase.probabilityRule);
  }
}
