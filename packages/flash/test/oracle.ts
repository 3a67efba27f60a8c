// The float64 oracle and same-precision references of @webattn/reference (imported, never copied).
export { attentionReference, attentionReferenceBackward, type HostTensor } from '@webattn/reference';
