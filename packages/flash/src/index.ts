export { checkFlash } from './check-flash';
export { flashAttention, flashAttentionGrad } from './flash-attention';
export { flashAttentionBackward, type FlashBackwardBuffers } from './flash-backward';
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
  tunedForwardTiles,
  type FlashCaps,
  type FlashTiles,
  type ForwardTiles,
} from './flash-tiles';
export {
  forwardCandidates,
  restoreFlashTuning,
  tuneFlashForward,
  type ForwardTuning,
  type SavedForwardTuning,
  type TuneOptions,
} from './flash-tuning';
export type { GradientLayouts } from './flash-uniforms';
export { checkSplitKv, splitKvAttention, splitKvAttentionForward } from './split-kv';
