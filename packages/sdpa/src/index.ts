export {
  explainSdpa,
  explainSdpaProblem,
  scaledDotProductAttention,
  scaledDotProductAttentionWithWeights,
  type AttentionWithWeights,
  type SdpaOptions,
} from './sdpa';
export { withSdpaBackends, currentSdpaBackends, sdpaScopeMechanism } from './restriction';
export {
  onSdpaDispatch,
  sdpaDebugEnabled,
  summarizeProblem,
  type SdpaDispatchEvent,
  type SdpaDispatchListener,
} from './dispatch-log';
export { NoEligibleBackendError } from './errors';
export type { SdpaBackendReport, SdpaExplanation } from './explain';
export {
  SDPA_BACKEND_NAMES,
  type AttentionGradients,
  type AttentionOutputs,
  type SdpaBackend,
  type SdpaBackendName,
  type SdpaCheck,
  type SdpaRequest,
  type SdpaRestriction,
  type SdpaTarget,
} from './backend';
export { SDPA_BACKENDS, SDPA_PRIORITY } from './registry';
export {
  GPU_CALIBRATION,
  SOFTWARE_CALIBRATION,
  calibrationFor,
  estimateCpu,
  estimateFlash,
  estimateMath,
  estimateSplitKv,
  type BackendCalibration,
  type CostCalibration,
  type CostEstimate,
} from './cost-model';
export {
  DEFAULT_DECODE_SHAPES,
  benchmarkDecode,
  formatDecodeBenchmark,
  type DecodeBenchmarkRow,
  type DecodeShape,
} from './benchmark';
