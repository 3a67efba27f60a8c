export { checkFlash } from './check-flash';
export { flashAttention, flashAttentionGrad } from './flash-attention';
export { flashAttentionBackward, type FlashBackwardBuffers } from './flash-backward';
export {
  flashAttentionForward,
  type FlashForwardBuffers,
  type FlashRecording,
  type FlashRecordOptions,
} from './flash-forward';
export { capsOfGpuDevice, chooseTiles, type FlashCaps, type FlashTiles } from './flash-tiles';
export type { GradientLayouts } from './flash-uniforms';
export { checkSplitKv, splitKvAttention, splitKvAttentionForward } from './split-kv';
