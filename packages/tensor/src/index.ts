export { BufferPool, bucketSize, type BufferPoolStats } from './buffer-pool';
export { MAX_PROFILED_DISPATCHES, type DispatchTime } from './dispatch-profile';
export { full, ones, rand, randn, tensor, zeros, type RandomOptions, type TensorOptions } from './creation';
export {
  DEFAULT_DAWN_FEATURES,
  DEFAULT_DISABLED_DAWN_FEATURES,
  Device,
  cpuDevice,
  createDevice,
  type CreateDeviceOptions,
  type DeviceCaps,
  type DeviceInfo,
  type SubgroupMatrixConfig,
} from './device';
export { DTYPES, assertDType, bytesPerElement, fromHalfBits, roundToHalf, toHalfBits, type DType } from './dtype';
export {
  AutogradError,
  DTypeError,
  DeviceLostError,
  DeviceMismatchError,
  DisposedTensorError,
  InvalidArgumentError,
  KernelError,
  NoAdapterError,
  ResourceLimitError,
  ShapeError,
  WebattnError,
} from './errors';
export {
  bestTimingMethod,
  createCallSampler,
  median,
  type CallSampler,
  type TimedCall,
  type TimingMethod,
} from './gpu-timing';
export { runKernel, workgroupGrid, type KernelRun } from './kernel';
export {
  ATTENTION_DROPOUT_WGSL,
  attentionDropoutDraw,
  attentionDropoutStream,
  attentionDropoutThreshold,
  attentionDropoutWord,
  attentionKeep,
  pcg4d,
  type AttentionDropoutStream,
} from './attention-dropout';
export {
  PHILOX_WGSL,
  dropoutThreshold,
  elementWord,
  philox4x32,
  seedKey,
  wordToUniform,
} from './philox';
export { PipelineCache, pipelineCacheFor, type KernelSource } from './pipeline-cache';
export {
  assertShape,
  broadcastShapes,
  contiguousStrides,
  formatShape,
  normalizeDim,
  numel,
  sameShape,
  type Shape,
} from './shape';
export { Storage, type CpuData } from './storage';
export { Tensor, emptyTensor, fromValues, type GradFn } from './tensor';
export { uniformLayout, type UniformLayout, type UniformScalar } from './uniforms';
export { WgslPreprocessError, composeWgsl, preprocessWgsl, type WgslVariant } from './wgsl';
export {
  alignedPosition,
  attentionFlops,
  bhndLayout,
  bnhdLayout,
  rejection,
  type AttentionDropout,
  type AttentionLayout,
  type AttentionMask,
  type AttentionProblem,
  type CausalAlignment,
  type Rejection,
} from './attention-problem';
export { describeAttention, type AttentionOptions } from './attention-options';
export { isGradEnabled, noGrad, record as recordGradFn } from './autograd';
export { add, copy, div, exp, gelu, log, mul, neg, relu, scale, sqrt, sub } from './ops/arithmetic';
export { cast } from './ops/cast';
export { cat, narrow } from './ops/cat';
export { dropout, type DropoutOptions } from './ops/dropout';
export { layerNorm } from './ops/layer-norm';
export { matmul, type MatmulOptions } from './ops/matmul';
export { mean, sum } from './ops/reduce';
export { maskedFill, where } from './ops/select';
export { logSoftmax, softmax } from './ops/softmax';
export { type Operand } from './ops/operands';
export { reduceToShape } from './ops/broadcast';
