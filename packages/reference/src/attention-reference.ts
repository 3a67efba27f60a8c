import { ShapeError, contiguousStrides, describeAttention, type AttentionOptions, type Tensor } from '@webattn/tensor';
import type { SequenceBounds } from './attention-geometry';
import { allowedKeyRange } from './attention-geometry';
import { hostTensorFrom, type HostTensor } from './host-tensor';
import type { ReferencePrecision } from './precision';
import { outputIndex, planReference, type ReferenceOptions, type ReferencePlan } from './reference-plan';

export interface AttentionReferenceResult {
  /** [B, Hq, L, Dv] (packed varlen: [totalQ, Hq, Dv]), row-major. */
  readonly out: Float64Array;
  readonly outShape: readonly number[];
  /** [B, Hq, L] (packed varlen: L = longest sequence, rows past a sequence's end are −∞). −∞ on fully masked rows. */
  readonly logsumexp: Float64Array;
  readonly logsumexpShape: readonly number[];
  /** With needWeights: [B, Hq, L, S], the weights after dropout (the matrix multiplying V); 0 where masked. */
  readonly weights?: Float64Array;
  readonly weightsShape?: readonly number[];
}

export interface AttentionReferenceGradients {
  readonly dq: Float64Array;
  readonly dqShape: readonly number[];
  readonly dk: Float64Array;
  readonly dkShape: readonly number[];
  readonly dv: Float64Array;
  readonly dvShape: readonly number[];
  /** For an additive mask: d loss / d mask, in the mask's own shape (summed over its broadcast dims). */
  readonly dMask?: Float64Array;
  readonly dMaskShape?: readonly number[];
}

/** One query row's softmax: everything forward and backward need about it. */
interface RowState {
  /** Allowed keys (column indices). */
  readonly columns: number[];
  /** Softmax probabilities of those keys (before dropout). */
  readonly probabilities: number[];
  /** Dropout factor per allowed key: 0 or 1 / (1 − p). */
  readonly dropout: number[];
  /** d score / d raw score per allowed key (softcap's 1 − tanh², else 1). */
  readonly capSlope: number[];
  readonly logsumexp: number;
}

function rowState(plan: ReferencePlan, b: number, head: number, row: number, sequence: SequenceBounds): RowState {
  const { problem, round } = plan;
  const kvHead = Math.floor((head * problem.kvHeads) / problem.queryHeads);
  const queryRow = sequence.queryStart + row;
  const dim = problem.headDimQk;
  const qValues = plan.q.values;
  const kValues = plan.k.values;
  const qOffset = plan.q.rowOffset(b, head, queryRow);
  const columns: number[] = [];
  const scores: number[] = [];
  const capSlope: number[] = [];
  const [start, end] = allowedKeyRange(problem, sequence, row);
  const boolMask = problem.mask.kind === 'bool';
  const additive = problem.mask.kind === 'additive';
  const { scale, softcap } = problem;
  for (let j = start; j < end; j++) {
    const maskValue = plan.mask ? plan.mask(b, head, row, j) : 0;
    if (boolMask && maskValue === 0) continue;
    const kOffset = plan.k.rowOffset(b, kvHead, sequence.keyStart + j);
    const dot = plan.dot(qValues, qOffset, kValues, kOffset, dim);
    let score = round(scale * dot);
    let slope = 1;
    if (softcap !== null) {
      const t = round(Math.tanh(round(score / softcap)));
      score = round(softcap * t);
      slope = round(1 - round(t * t));
    }
    if (additive) score = round(score + maskValue);
    if (score === Number.NEGATIVE_INFINITY) continue;
    columns.push(j);
    scores.push(score);
    capSlope.push(slope);
  }
  let max = Number.NEGATIVE_INFINITY;
  for (const score of scores) max = Math.max(max, score);
  if (columns.length === 0 || max === Number.NEGATIVE_INFINITY) {
    return { columns: [], probabilities: [], dropout: [], capSlope: [], logsumexp: Number.NEGATIVE_INFINITY };
  }
  const exps = scores.map((score) => round(Math.exp(round(score - max))));
  let sum = 0;
  for (const e of exps) sum = round(sum + e);
  const probabilities = exps.map((e) => round(e / sum));
  const dropout = problem.dropout ? columns.map((j) => plan.dropoutFactor(b, head, row, j)) : columns.map(() => 1);
  return { columns, probabilities, dropout, capSlope, logsumexp: round(max + round(Math.log(sum))) };
}

function forward(plan: ReferencePlan, needWeights: boolean) {
  const { problem, round } = plan;
  const { batch, queryHeads, queryLength, keyLength, headDimV } = problem;
  const out = new Float64Array(plan.outShape.reduce((a, b) => a * b, 1));
  const logsumexp = new Float64Array(batch * queryHeads * queryLength).fill(Number.NEGATIVE_INFINITY);
  const weights = needWeights ? new Float64Array(batch * queryHeads * queryLength * keyLength) : undefined;
  const rows: RowState[][] = [];
  for (let b = 0; b < batch; b++) {
    const sequence = plan.sequences[b]!;
    for (let head = 0; head < queryHeads; head++) {
      const kvHead = Math.floor((head * problem.kvHeads) / queryHeads);
      const headRows: RowState[] = [];
      rows.push(headRows);
      for (let i = 0; i < sequence.queryRows; i++) {
        const state = rowState(plan, b, head, i, sequence);
        headRows.push(state);
        const rowIndex = (b * queryHeads + head) * queryLength + i;
        logsumexp[rowIndex] = state.logsumexp;
        const kept = state.probabilities.map((p, n) => round(p * state.dropout[n]!));
        if (weights) state.columns.forEach((j, n) => (weights[rowIndex * keyLength + j] = kept[n]!));
        const outOffset = outputIndex(plan, queryHeads, headDimV, queryLength, b, head, sequence.queryStart + i, 0);
        const vValues = plan.v.values;
        const vOffsets = state.columns.map((j) => plan.v.rowOffset(b, kvHead, sequence.keyStart + j));
        for (let n = 0; n < vOffsets.length; n++) plan.accumulate(out, outOffset, kept[n]!, vValues, vOffsets[n]!, headDimV);
      }
    }
  }
  return { out, logsumexp, weights, rows };
}

/**
 * The float64 attention oracle (or, with `precision`, the same-precision reference). q [B, Hq, L, Dqk],
 * k [B, Hkv, S, Dqk], v [B, Hkv, S, Dv] as plain arrays with shapes (any strides); options as AttentionOptions.
 * Inputs are validated exactly like tensors (`describeAttention`), with the same typed errors.
 */
export function attentionReference(
  q: HostTensor,
  k: HostTensor,
  v: HostTensor,
  options: ReferenceOptions = {},
): AttentionReferenceResult {
  const plan = planReference(q, k, v, options);
  return referenceForward(plan, options.needWeights ?? false);
}

/** @internal Forward from a resolved plan. */
export function referenceForward(plan: ReferencePlan, needWeights: boolean): AttentionReferenceResult {
  const { out, logsumexp, weights } = forward(plan, needWeights);
  const { batch, queryHeads, queryLength, keyLength } = plan.problem;
  return {
    out,
    outShape: plan.outShape,
    logsumexp,
    logsumexpShape: [batch, queryHeads, queryLength],
    ...(weights ? { weights, weightsShape: [batch, queryHeads, queryLength, keyLength] } : {}),
  };
}

/**
 * Gradients of sum(out · gradOut) with respect to q, k, v (and an additive mask), recomputing the forward in the
 * same precision. Fully masked rows contribute nothing: zero gradients, never NaN.
 */
export function attentionReferenceBackward(
  q: HostTensor,
  k: HostTensor,
  v: HostTensor,
  gradOut: HostTensor,
  options: ReferenceOptions = {},
): AttentionReferenceGradients {
  return referenceBackward(planReference(q, k, v, options), gradOut);
}

/** @internal Backward from a resolved plan. */
export function referenceBackward(plan: ReferencePlan, gradOut: HostTensor): AttentionReferenceGradients {
  const { problem, round } = plan;
  const { batch, queryHeads, queryLength, headDimQk, headDimV, kvHeads } = problem;
  const expectedShape = plan.outShape;
  if (gradOut.shape.length !== expectedShape.length || gradOut.shape.some((size, axis) => size !== expectedShape[axis])) {
    throw new ShapeError(`gradOut [${gradOut.shape.join(', ')}] must have out's shape [${expectedShape.join(', ')}]`);
  }
  const { out, rows } = forward(plan, false);
  const gradStrides = gradOut.strides ?? contiguousStrides(gradOut.shape);
  const gradOffset = gradOut.offset ?? 0;
  const gradAt = (b: number, head: number, row: number, d: number) =>
    round(
      gradOut.data[
        gradOffset +
          (problem.varlen
            ? row * gradStrides[0]! + head * gradStrides[1]! + d * gradStrides[2]!
            : b * gradStrides[0]! + head * gradStrides[1]! + row * gradStrides[2]! + d * gradStrides[3]!)
      ]!,
    );
  const qValues = plan.q.values;
  const kValues = plan.k.values;
  const vValues = plan.v.values;
  const dq = new Float64Array(plan.qShape.reduce((a, b) => a * b, 1));
  const dk = new Float64Array(plan.kShape.reduce((a, b) => a * b, 1));
  const dv = new Float64Array(plan.vShape.reduce((a, b) => a * b, 1));
  const dMask =
    problem.mask.kind === 'additive' && plan.maskShape
      ? new Float64Array(plan.maskShape.reduce((a, b) => a * b, 1))
      : undefined;
  for (let b = 0; b < batch; b++) {
    const sequence = plan.sequences[b]!;
    for (let head = 0; head < queryHeads; head++) {
      const kvHead = Math.floor((head * kvHeads) / queryHeads);
      const headRows = rows[b * queryHeads + head]!;
      for (let i = 0; i < sequence.queryRows; i++) {
        const state = headRows[i]!;
        if (state.columns.length === 0) continue;
        const queryRow = sequence.queryStart + i;
        const gradRow = Float64Array.from({ length: headDimV }, (_, d) => gradAt(b, head, queryRow, d));
        const outOffset = outputIndex(plan, queryHeads, headDimV, queryLength, b, head, queryRow, 0);
        const delta = plan.dot(gradRow, 0, out, outOffset, headDimV);
        const qOffset = plan.q.rowOffset(b, head, queryRow);
        state.columns.forEach((j, n) => {
          const keyRow = sequence.keyStart + j;
          const kOffset = plan.k.rowOffset(b, kvHead, keyRow);
          const vOffset = plan.v.rowOffset(b, kvHead, keyRow);
          const p = state.probabilities[n]!;
          const factor = state.dropout[n]!;
          const kept = round(p * factor);
          plan.accumulate(dv, vOffset, kept, gradRow, 0, headDimV);
          const gradKept = plan.dot(gradRow, 0, vValues, vOffset, headDimV);
          const gradProbability = round(gradKept * factor);
          const gradScore = round(p * round(gradProbability - delta));
          if (dMask && plan.maskGradientIndex) {
            const index = plan.maskGradientIndex(b, head, i, j);
            dMask[index] = round(dMask[index]! + gradScore);
          }
          const gradRaw = round(round(gradScore * state.capSlope[n]!) * problem.scale);
          plan.accumulate(dq, qOffset, gradRaw, kValues, kOffset, headDimQk);
          plan.accumulate(dk, kOffset, gradRaw, qValues, qOffset, headDimQk);
        });
      }
    }
  }
  return {
    dq,
    dqShape: plan.qShape,
    dk,
    dkShape: plan.kShape,
    dv,
    dvShape: plan.vShape,
    ...(dMask && plan.maskShape ? { dMask, dMaskShape: plan.maskShape } : {}),
  };
}

/**
 * The oracle on Tensors from any device (GPU tensors are read back): the same validation as every backend
 * (`describeAttention`), results in float64.
 */
export async function attentionReferenceForTensors(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  options: AttentionOptions & { readonly precision?: ReferencePrecision } = {},
): Promise<AttentionReferenceResult> {
  const problem = describeAttention(q, k, v, options);
  const { attnMask, ...rest } = options;
  const [hq, hk, hv, mask] = await Promise.all([
    hostTensorFrom(q),
    hostTensorFrom(k),
    hostTensorFrom(v),
    attnMask ? hostTensorFrom(attnMask) : undefined,
  ]);
  // The host copies are contiguous, so describe them again for their own strides.
  const plan = planReference(hq, hk, hv, { ...rest, ...(mask ? { attnMask: mask } : {}), ...(problem.dropout ? { dropoutSeed: problem.dropout.seed } : {}) });
  return referenceForward(plan, problem.needWeights);
}
