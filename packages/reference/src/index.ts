export {
  attentionReference,
  attentionReferenceBackward,
  type AttentionReferenceGradients,
  type AttentionReferenceResult,
} from './attention-reference';
export { keyAllowed, sequenceBounds, type SequenceBounds, type SequenceOptions } from './attention-geometry';
export { hostTensorFrom, hostViewOf, isBoolHostTensor, type HostTensor } from './host-tensor';
export { rounderFor, type ReferencePrecision } from './precision';
export type { ReferenceOptions } from './reference-plan';
