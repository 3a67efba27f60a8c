import { composeWgsl, uniformLayout, type KernelSource } from '@webattn/tensor';
import { bindingWindow } from './binding-chunks';
import type { KernelRecorder } from './recorder';
import source from './copy-floats.wgsl?raw';

const COPY_UNIFORMS = uniformLayout([
  ['source_index', 'u32'],
  ['target_index', 'u32'],
  ['count', 'u32'],
  ['stride', 'u32'],
]);

const THREADS = 64;
const MAX_WORKGROUPS = 65535;
/** minStorageBufferOffsetAlignment's largest allowed value. */
const ALIGNMENT = 256;

const COPY_FLOATS: KernelSource = {
  name: 'flash-copy-floats',
  variant: '',
  code: () => composeWgsl([source], { replacements: { UNIFORMS: COPY_UNIFORMS.wgslStruct('Params') } }),
};

/** f32 elements [index, index + count) of a buffer. */
export interface FloatRange {
  readonly buffer: GPUBuffer;
  readonly index: number;
}

/**
 * Records a copy of `count` f32 values between two buffers, each bound only around the copied range (so that a
 * copy fits a storage binding whenever 4·count bytes do); nothing is recorded for count 0.
 */
export function recordCopyFloats(recorder: KernelRecorder, from: FloatRange, to: FloatRange, count: number): void {
  if (count <= 0) return;
  const window = (range: FloatRange) => bindingWindow({ first: range.index, end: range.index + count }, 4, ALIGNMENT, range.buffer.size);
  const input = window(from);
  const output = window(to);
  const workgroups = Math.min(MAX_WORKGROUPS, Math.ceil(count / THREADS));
  recorder.dispatch(
    COPY_FLOATS,
    [
      [1, { buffer: from.buffer, offset: input.offset, size: input.size }],
      [2, { buffer: to.buffer, offset: output.offset, size: output.size }],
    ],
    COPY_UNIFORMS.pack({ source_index: from.index - input.shift, target_index: to.index - output.shift, count, stride: workgroups * THREADS }),
    [workgroups, 1, 1],
  );
}
