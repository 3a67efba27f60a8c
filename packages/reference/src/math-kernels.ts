/**
 * The WGSL math backend's kernels: sources, uniform layouts and one function per dispatch. Variants (f16 inputs,
 * mask kind) change the source through the preprocessor; every size and stride travels in uniforms.
 */
import {
  ATTENTION_DROPOUT_WGSL,
  composeWgsl,
  attentionDropoutStream,
  attentionDropoutThreshold,
  runKernel,
  uniformLayout,
  workgroupGrid,
  type AttentionLayout,
  type AttentionProblem,
  type Device,
  type KernelSource,
} from '@webattn/tensor';
import scoreSource from './attention-score.wgsl?raw';
import packHalfSource from './pack-half.wgsl?raw';
import rowStatisticsSource from './row-statistics.wgsl?raw';
import scoreGradientsSource from './score-gradients.wgsl?raw';
import scoresSource from './scores.wgsl?raw';
import softmaxRowsSource from './softmax-rows.wgsl?raw';
import transposedSource from './weights-transposed-times.wgsl?raw';
import productSource from './weights-times-values.wgsl?raw';

const strided = (name: string) =>
  [
    [`${name}_offset`, 'u32'],
    [`${name}_batch`, 'u32'],
    [`${name}_head`, 'u32'],
    [`${name}_sequence`, 'u32'],
    [`${name}_dim`, 'u32'],
  ] as const;

export const attentionUniforms = uniformLayout([
  ['batch', 'u32'],
  ['query_heads', 'u32'],
  ['kv_heads', 'u32'],
  ['query_length', 'u32'],
  ['key_length', 'u32'],
  ['head_dim_qk', 'u32'],
  ['head_dim_v', 'u32'],
  ...strided('q'),
  ...strided('k'),
  ...strided('v'),
  ...strided('grad'),
  ['mask_offset', 'u32'],
  ['mask_batch', 'u32'],
  ['mask_head', 'u32'],
  ['mask_row', 'u32'],
  ['mask_column', 'u32'],
  ['scale', 'f32'],
  ['softcap', 'f32'],
  ['causal', 'u32'],
  ['window_left', 'i32'],
  ['window_right', 'i32'],
  ['stream0', 'u32'],
  ['stream1', 'u32'],
  ['stream2', 'u32'],
  ['stream3', 'u32'],
  ['threshold', 'u32'],
  ['keep_scale', 'f32'],
]);

const softmaxUniforms = uniformLayout([
  ['rows', 'u32'],
  ['columns', 'u32'],
  ['query_length', 'u32'],
  ['stream0', 'u32'],
  ['stream1', 'u32'],
  ['stream2', 'u32'],
  ['stream3', 'u32'],
  ['threshold', 'u32'],
  ['keep_scale', 'f32'],
]);

const productUniforms = uniformLayout([
  ['batch', 'u32'],
  ['query_heads', 'u32'],
  ['kv_heads', 'u32'],
  ['query_length', 'u32'],
  ['key_length', 'u32'],
  ['dim', 'u32'],
  ...strided('x'),
  ['out_batch', 'u32'],
  ['out_head', 'u32'],
  ['out_sequence', 'u32'],
]);

const rowUniforms = uniformLayout([
  ['batch', 'u32'],
  ['query_heads', 'u32'],
  ['query_length', 'u32'],
  ['dim', 'u32'],
  ...strided('out'),
  ...strided('grad'),
]);

const packUniforms = uniformLayout([['count', 'u32']]);

/** What selects a kernel variant: input dtype and mask kind. Never shapes. */
export interface MathVariant {
  readonly f16: boolean;
  readonly mask: 'none' | 'bool' | 'f32' | 'f16';
}

export function variantOf(problem: AttentionProblem): MathVariant {
  const mask = problem.mask;
  return {
    f16: problem.dtype === 'f16',
    mask: mask.kind === 'none' ? 'none' : mask.kind === 'bool' ? 'bool' : mask.dtype === 'f16' ? 'f16' : 'f32',
  };
}

function kernel(name: string, parts: string[], variant: MathVariant, uniformsStruct: string): KernelSource {
  return {
    name: `math-${name}`,
    variant: `${variant.f16 ? 'f16' : 'f32'}|mask-${variant.mask}`,
    code: () =>
      composeWgsl(parts, {
        flags: {
          F16: variant.f16,
          MASK_BOOL: variant.mask === 'bool',
          MASK_ADDITIVE: variant.mask === 'f32' || variant.mask === 'f16',
          MASK_F16: variant.mask === 'f16',
        },
        replacements: {
          UNIFORMS: uniformsStruct,
          ELEMENT: variant.f16 ? 'u32' : 'f32',
          MASK_ELEMENT: variant.mask === 'f32' ? 'f32' : 'u32',
        },
      }),
  };
}

/** Kernel sources of a variant (exported for snapshot tests). */
export function mathKernelSources(variant: MathVariant) {
  const attention = attentionUniforms.wgslStruct('AttentionUniforms');
  const product = productUniforms.wgslStruct('ProductUniforms');
  const plain = { ...variant, mask: 'none' as const };
  return {
    scores: kernel('scores', [scoreSource, scoresSource], variant, attention),
    softmax: kernel('softmax-rows', [ATTENTION_DROPOUT_WGSL, softmaxRowsSource], { f16: false, mask: 'none' }, softmaxUniforms.wgslStruct('SoftmaxUniforms')),
    product: kernel('weights-times-values', [productSource], plain, product),
    transposed: kernel('weights-transposed-times', [transposedSource], plain, product),
    rowStatistics: kernel('row-statistics', [rowStatisticsSource], plain, rowUniforms.wgslStruct('RowUniforms')),
    scoreGradients: kernel('score-gradients', [ATTENTION_DROPOUT_WGSL, scoreSource, scoreGradientsSource], variant, attention),
    packHalf: kernel('pack-half', [packHalfSource], { f16: false, mask: 'none' }, packUniforms.wgslStruct('PackUniforms')),
  };
}

const stridedValues = (name: string, layout: AttentionLayout) => ({
  [`${name}_offset`]: layout.offset,
  [`${name}_batch`]: layout.batch,
  [`${name}_head`]: layout.head,
  [`${name}_sequence`]: layout.sequence,
  [`${name}_dim`]: layout.dim,
});

function dropoutValues(problem: AttentionProblem) {
  const dropout = problem.dropout;
  if (!dropout) return { stream0: 0, stream1: 0, stream2: 0, stream3: 0, threshold: 0, keep_scale: 1 };
  const [stream0, stream1, stream2, stream3] = attentionDropoutStream(dropout.seed, dropout.offset);
  return {
    stream0,
    stream1,
    stream2,
    stream3,
    threshold: attentionDropoutThreshold(dropout.p),
    keep_scale: 1 / (1 - dropout.p),
  };
}

/** Packs the attention uniforms; `grad` is the layout of dO (backward) or any layout (forward ignores it). */
export function packAttentionUniforms(problem: AttentionProblem, grad: AttentionLayout): ArrayBuffer {
  const mask = problem.mask.kind === 'none' ? null : problem.mask;
  const values = {
    batch: problem.batch,
    query_heads: problem.queryHeads,
    kv_heads: problem.kvHeads,
    query_length: problem.queryLength,
    key_length: problem.keyLength,
    head_dim_qk: problem.headDimQk,
    head_dim_v: problem.headDimV,
    ...stridedValues('q', problem.layout.q),
    ...stridedValues('k', problem.layout.k),
    ...stridedValues('v', problem.layout.v),
    ...stridedValues('grad', grad),
    mask_offset: mask?.offset ?? 0,
    mask_batch: mask?.strides.batch ?? 0,
    mask_head: mask?.strides.head ?? 0,
    mask_row: mask?.strides.row ?? 0,
    mask_column: mask?.strides.column ?? 0,
    scale: problem.scale,
    softcap: problem.softcap ?? 0,
    causal: problem.causal ? 1 : 0,
    window_left: problem.window?.left ?? -1,
    window_right: problem.window?.right ?? -1,
    ...dropoutValues(problem),
  };
  return attentionUniforms.pack(values as Parameters<typeof attentionUniforms.pack>[0]);
}

const grid = (device: Device, threads: number) => workgroupGrid(device, Math.ceil(threads / 64));

export function encodeScores(
  device: Device,
  problem: AttentionProblem,
  buffers: { q: GPUBuffer; k: GPUBuffer; mask: GPUBuffer; sequences: GPUBuffer; scores: GPUBuffer },
): void {
  const { batch, queryHeads, queryLength, keyLength } = problem;
  runKernel(device, mathKernelSources(variantOf(problem)).scores, {
    buffers: [buffers.q, buffers.k, buffers.mask, buffers.sequences, buffers.scores],
    uniforms: packAttentionUniforms(problem, problem.layout.out),
    workgroups: grid(device, batch * queryHeads * queryLength * keyLength),
  });
}

export function encodeSoftmax(
  device: Device,
  problem: AttentionProblem,
  buffers: { scores: GPUBuffer; logsumexp: GPUBuffer },
): void {
  const rows = problem.batch * problem.queryHeads * problem.queryLength;
  runKernel(device, mathKernelSources(variantOf(problem)).softmax, {
    buffers: [buffers.scores, buffers.logsumexp],
    uniforms: softmaxUniforms.pack({
      rows,
      columns: problem.keyLength,
      query_length: problem.queryLength,
      ...dropoutValues(problem),
    }),
    workgroups: workgroupGrid(device, rows),
  });
}

export interface ProductRun {
  readonly weights: GPUBuffer;
  readonly x: GPUBuffer;
  readonly xLayout: AttentionLayout;
  readonly dim: number;
  readonly sequences: GPUBuffer;
  readonly out: GPUBuffer;
  readonly outLayout: Pick<AttentionLayout, 'batch' | 'head' | 'sequence'>;
}

function productValues(problem: AttentionProblem, run: ProductRun) {
  return productUniforms.pack({
    batch: problem.batch,
    query_heads: problem.queryHeads,
    kv_heads: problem.kvHeads,
    query_length: problem.queryLength,
    key_length: problem.keyLength,
    dim: run.dim,
    x_offset: run.xLayout.offset,
    x_batch: run.xLayout.batch,
    x_head: run.xLayout.head,
    x_sequence: run.xLayout.sequence,
    x_dim: run.xLayout.dim,
    out_batch: run.outLayout.batch,
    out_head: run.outLayout.head,
    out_sequence: run.outLayout.sequence,
  });
}

/** out[b, h, i, :] = Σ_j W[b, h, i, j] · X[b, kv(h), j, :] (X has q's dtype). */
export function encodeWeightsTimes(device: Device, problem: AttentionProblem, run: ProductRun): void {
  runKernel(device, mathKernelSources(variantOf(problem)).product, {
    buffers: [run.weights, run.x, run.sequences, run.out],
    uniforms: productValues(problem, run),
    workgroups: grid(device, problem.batch * problem.queryHeads * problem.queryLength * run.dim),
  });
}

/** out[b, g, j, :] = Σ_{h of g} Σ_i W[b, h, i, j] · Y[b, h, i, :] (Y has q's dtype; `x*` fields describe Y). */
export function encodeWeightsTransposedTimes(device: Device, problem: AttentionProblem, run: ProductRun): void {
  runKernel(device, mathKernelSources(variantOf(problem)).transposed, {
    buffers: [run.weights, run.x, run.sequences, run.out],
    uniforms: productValues(problem, run),
    workgroups: grid(device, problem.batch * problem.kvHeads * problem.keyLength * run.dim),
  });
}

export function encodeRowStatistics(
  device: Device,
  problem: AttentionProblem,
  buffers: { logsumexp: GPUBuffer; out: GPUBuffer; grad: GPUBuffer; sequences: GPUBuffer; stats: GPUBuffer },
  layouts: { out: AttentionLayout; grad: AttentionLayout },
): void {
  const rows = problem.batch * problem.queryHeads * problem.queryLength;
  runKernel(device, mathKernelSources(variantOf(problem)).rowStatistics, {
    buffers: [buffers.logsumexp, buffers.out, buffers.grad, buffers.sequences, buffers.stats],
    uniforms: rowUniforms.pack({
      batch: problem.batch,
      query_heads: problem.queryHeads,
      query_length: problem.queryLength,
      dim: problem.headDimV,
      ...stridedValues('out', layouts.out),
      ...stridedValues('grad', layouts.grad),
    } as Parameters<typeof rowUniforms.pack>[0]),
    workgroups: grid(device, rows),
  });
}

export function encodeScoreGradients(
  device: Device,
  problem: AttentionProblem,
  buffers: {
    q: GPUBuffer;
    k: GPUBuffer;
    v: GPUBuffer;
    mask: GPUBuffer;
    sequences: GPUBuffer;
    stats: GPUBuffer;
    grad: GPUBuffer;
    scoreGradients: GPUBuffer;
  },
  gradLayout: AttentionLayout,
): void {
  const { batch, queryHeads, queryLength, keyLength } = problem;
  runKernel(device, mathKernelSources(variantOf(problem)).scoreGradients, {
    buffers: [
      buffers.q,
      buffers.k,
      buffers.v,
      buffers.mask,
      buffers.sequences,
      buffers.stats,
      buffers.grad,
      buffers.scoreGradients,
    ],
    uniforms: packAttentionUniforms(problem, gradLayout),
    workgroups: grid(device, batch * queryHeads * queryLength * keyLength),
  });
}

/** Packs `count` f32 values into f16 storage (whole words per thread). */
export function encodePackHalf(device: Device, source: GPUBuffer, target: GPUBuffer, count: number): void {
  runKernel(device, mathKernelSources({ f16: false, mask: 'none' }).packHalf, {
    buffers: [source, target],
    uniforms: packUniforms.pack({ count }),
    workgroups: grid(device, Math.ceil(count / 2)),
  });
}
