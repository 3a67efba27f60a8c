export { checkFlash } from './check-flash';
export { flashAttention, flashAttentionGrad } from './flash-attention';
export { flashAttentionBackward, matrixBackwardShapes, type FlashBackwardBuffers } from './flash-backward';
export type { PackedRows } from './flash-chunks';
export {
  flashAttentionForward,
  type FlashForwardBuffers,
  type FlashRecording,
  type FlashRecordOptions,
} from './flash-forward';
export {
  capsOfGpuDevice,
  chooseTiles,
  tunedBackwardShapes,
  tunedForwardTiles,
  type FlashCaps,
  type FlashTiles,
  type ForwardTiles,
  type MatrixBackwardShapes,
  type MatrixKeyValueShape,
  type MatrixQueryShape,
  type TiledBackwardKernel,
  type TiledShape,
  type TunedBackwardShapes,
} from './flash-tiles';
export {
  CAUSAL_FRACTION_FLOOR,
  backwardCandidates,
  causalFraction,
  fastestKeepingCausal,
  forwardCandidates,
  matrixBackwardCandidates,
  restoreFlashBackwardTuning,
  restoreFlashTuning,
  tuneFlashBackward,
  tuneFlashForward,
  type BackwardShapes,
  type BackwardTuneOptions,
  type BackwardTuning,
  type CandidateTimes,
  type ForwardTuning,
  type SavedBackwardTuning,
  type SavedForwardTuning,
  type TuneOptions,
} from './flash-tuning';
export type { GradientLayouts } from './flash-uniforms';
export { STORED_SCORES_BYTES, setStoredScoresBudget, storedQueryShape, type StoredQueryShape } from './stored-scores';
export { checkSplitKv, splitKvAttention, splitKvAttentionForward } from './split-kv';
