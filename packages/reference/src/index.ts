export {
  attentionReference,
  attentionReferenceBackward,
  attentionReferenceForTensors,
  type AttentionReferenceGradients,
  type AttentionReferenceResult,
} from './attention-reference';
export { allowedKeyRange, keyAllowed, sequenceBounds, type SequenceBounds, type SequenceOptions } from './attention-geometry';
export {
  DEFAULT_MATH_MEMORY_BUDGET_BYTES,
  checkMath,
  mathMemoryBytes,
  mathScoresBytes,
  type MathLimits,
} from './check-math';
export { cpuAttention, cpuAttentionBackward, type CpuAttentionGradients, type CpuAttentionResult } from './cpu-attention';
export { hostTensorFrom, hostViewOf, isBoolHostTensor, type HostTensor } from './host-tensor';
export {
  mathAttention,
  mathAttentionBackward,
  type MathAttentionGradients,
  type MathAttentionResult,
} from './math-attention';
export { fastRoundToHalf, rounderFor, type ReferencePrecision } from './precision';
export type { ReferenceOptions } from './reference-plan';
