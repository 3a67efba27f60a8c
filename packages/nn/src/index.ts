export { ReLU, GELU, activationFunction, type ActivationName } from './activation';
export { Adam, AdamW, type AdamOptions } from './adam';
export { assignValues, type HostTensor } from './assign';
export { multiheadMaskToSdpa, type MultiheadMaskInput } from './attention-mask';
export { clipGradNorm } from './clip-grad';
export { Dropout } from './dropout';
export { Embedding } from './embedding';
export { SeedSequence } from './init';
export { LayerNorm, type LayerNormOptions } from './layer-norm';
export { Linear, linear, type LinearOptions } from './linear';
export {
  CrossEntropyLoss,
  MSELoss,
  crossEntropy,
  mseLoss,
  type CrossEntropyOptions,
  type Reduction,
} from './loss';
export { Module, type LoadStateDictResult, type StateDict, type StateDictSource } from './module';
export { ModuleList } from './module-list';
export {
  MultiheadAttention,
  type MultiheadAttentionCall,
  type MultiheadAttentionOptions,
  type MultiheadAttentionResult,
} from './multihead-attention';
export { Optimizer } from './optimizer';
export {
  SafetensorsError,
  parseSafetensors,
  serializeSafetensors,
  type SafetensorsDType,
  type SafetensorsEntry,
  type SafetensorsFile,
} from './safetensors';
export { Scratch } from './scratch';
export { Sequential, type TensorModule } from './sequential';
export { SGD, type SgdOptions } from './sgd';
export { TransformerEncoder, type TransformerEncoderOptions } from './transformer-encoder';
export {
  TransformerEncoderLayer,
  type EncoderCall,
  type TransformerEncoderLayerOptions,
} from './transformer-encoder-layer';
export {
  loadJsonWeights,
  loadSafetensors,
  saveJsonWeights,
  saveSafetensors,
  stateDictFromJson,
  stateDictToHost,
  type JsonTensor,
} from './weights-io';
