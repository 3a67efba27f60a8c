import { bytesPerElement, roundToHalf, type DType } from '../dtype';
import { ShapeError } from '../errors';
import { runKernel, workgroupGrid } from '../kernel';
import { elementWord, PHILOX_WGSL } from '../philox';
import { contiguousStrides, formatShape, numel, type Shape } from '../shape';
import { emptyTensor, Tensor } from '../tensor';
import { uniformLayout } from '../uniforms';
import { composeWgsl } from '../wgsl';
import { broadcastAll, broadcastStrides } from './broadcast';
import elementwiseSource from './elementwise.wgsl?raw';
import { assertBindable, commonDevice, cpuFloatArray, cpuTensor, type Operand } from './operands';

/**
 * The one elementwise mechanism behind every pointwise op (arithmetic, unary math, where, cast, copy, dropout):
 * broadcast strided inputs, any dtype, computed in f32 on the GPU and as plain loops on the CPU.
 * Codes match `OP` in elementwise.wgsl.
 */
export const ELEMENTWISE_OPS = {
  identity: 0,
  neg: 1,
  exp: 2,
  log: 3,
  sqrt: 4,
  relu: 5,
  gelu: 6,
  scale: 7,
  add: 10,
  sub: 11,
  mul: 12,
  div: 13,
  /** (gradient, x) → gradient where x > 0 */
  reluBackward: 14,
  /** (gradient, x) → gradient · gelu'(x) */
  geluBackward: 15,
  /** (condition, a, b) → condition ? a : b */
  where: 20,
  /** a kept (· alpha) where elementWord(key, offset, index) >= threshold, else 0 */
  dropout: 30,
} as const;

export type ElementwiseOp = keyof typeof ELEMENTWISE_OPS;

export interface ElementwiseParams {
  /** Multiplier for scale and dropout. */
  readonly alpha?: number;
  readonly key?: readonly [number, number];
  readonly philoxOffset?: number;
  readonly threshold?: number;
}

const MAX_RANK = 6;
/** 64 invocations × WORDS_PER_THREAD (elementwise.wgsl). */
const WORDS_PER_WORKGROUP = 256;
const INPUTS = ['a', 'b', 'c'] as const;

const layout = uniformLayout([
  ['count', 'u32'],
  ...Array.from({ length: MAX_RANK }, (_, i) => [`size${i}`, 'u32'] as const),
  ...INPUTS.map((name) => [`offset_${name}`, 'u32'] as const),
  ...INPUTS.flatMap((name) => Array.from({ length: MAX_RANK }, (_, i) => [`stride_${name}${i}`, 'u32'] as const)),
  ...INPUTS.map((name) => [`scalar_${name}`, 'f32'] as const),
  ['alpha', 'f32'],
  ['key0', 'u32'],
  ['key1', 'u32'],
  ['philox_offset', 'u32'],
  ['threshold', 'u32'],
]);

const wgsl = (dropout: boolean) => () =>
  composeWgsl(dropout ? [PHILOX_WGSL, elementwiseSource] : [elementwiseSource], {
    flags: { DROPOUT: dropout },
    replacements: { UNIFORMS: layout.wgslStruct('Uniforms') },
  });

/** Exact erf for float64 (series below 2.5, continued fraction of erfc above): the CPU twin of erf_approx. */
export function erf(x: number): number {
  const z = Math.abs(x);
  if (z < 2.5) {
    let term = z;
    let total = z;
    for (let n = 1; n < 60; n++) {
      term *= (-z * z) / n;
      const next = term / (2 * n + 1);
      total += next;
      if (Math.abs(next) < 1e-17 * Math.abs(total)) break;
    }
    return Math.sign(x) * total * (2 / Math.sqrt(Math.PI));
  }
  let fraction = z;
  for (let n = 60; n >= 1; n--) fraction = z + n / 2 / fraction;
  return Math.sign(x) * (1 - Math.exp(-z * z) / Math.sqrt(Math.PI) / fraction);
}

const gelu = (x: number) => 0.5 * x * (1 + erf(x * Math.SQRT1_2));
const geluDerivative = (x: number) =>
  0.5 * (1 + erf(x * Math.SQRT1_2)) + x * Math.exp(-0.5 * x * x) / Math.sqrt(2 * Math.PI);

type PointFunction = (a: number, b: number, c: number, index: number) => number;

function pointFunction(op: ElementwiseOp, params: ElementwiseParams): PointFunction {
  const alpha = params.alpha ?? 1;
  switch (op) {
    case 'identity': return (a) => a;
    case 'neg': return (a) => -a;
    case 'exp': return (a) => Math.exp(a);
    case 'log': return (a) => Math.log(a);
    case 'sqrt': return (a) => Math.sqrt(a);
    case 'relu': return (a) => (a > 0 ? a : 0);
    case 'gelu': return gelu;
    case 'scale': return (a) => a * alpha;
    case 'add': return (a, b) => a + b;
    case 'sub': return (a, b) => a - b;
    case 'mul': return (a, b) => a * b;
    case 'div': return (a, b) => a / b;
    case 'reluBackward': return (a, b) => (b > 0 ? a : 0);
    case 'geluBackward': return (a, b) => a * geluDerivative(b);
    case 'where': return (a, b, c) => (a !== 0 ? b : c);
    case 'dropout': {
      const key = params.key ?? [0, 0];
      const offset = params.philoxOffset ?? 0;
      const threshold = params.threshold ?? 0;
      return (a, _b, _c, index) => (elementWord(key, offset, index) >= threshold ? a * alpha : 0);
    }
  }
}

/** A strided input of a CPU kernel: element (i0, i1, ...) is data[offset + Σ i_d · strides[d]]. */
export interface StridedArray {
  readonly data: ArrayLike<number>;
  readonly strides: readonly number[];
  readonly offset: number;
}

/**
 * The CPU kernel, a pure function over number arrays (so it also runs in float64): writes op(inputs) for every
 * position of `shape` into `out` in row-major order. Inputs carry strides already broadcast to `shape`.
 */
export function elementwiseCpu(
  op: ElementwiseOp,
  inputs: readonly (StridedArray | number)[],
  shape: Shape,
  out: Float32Array | Float64Array | Uint8Array,
  params: ElementwiseParams = {},
): void {
  const f = pointFunction(op, params);
  const rank = shape.length;
  const strided = [0, 1, 2].map((i) => {
    const input = inputs[i] ?? 0;
    return typeof input === 'number' ? { data: [input], strides: new Array<number>(rank).fill(0), offset: 0 } : input;
  }) as [StridedArray, StridedArray, StridedArray];
  const [a, b, c] = strided;
  const [da, db, dc] = [a.data, b.data, c.data];
  const [sa, sb, sc] = [a.strides, b.strides, c.strides];
  let [pa, pb, pc] = [a.offset, b.offset, c.offset];
  const index = new Array<number>(rank).fill(0);
  const isBool = out instanceof Uint8Array;
  const count = numel(shape);
  for (let i = 0; i < count; i++) {
    const value = f(da[pa]!, db[pb]!, dc[pc]!, i);
    out[i] = isBool ? (value !== 0 ? 1 : 0) : value;
    for (let dim = rank - 1; dim >= 0; dim--) {
      index[dim]!++;
      pa += sa[dim]!;
      pb += sb[dim]!;
      pc += sc[dim]!;
      if (index[dim]! < shape[dim]!) break;
      const size = shape[dim]!;
      pa -= sa[dim]! * size;
      pb -= sb[dim]! * size;
      pc -= sc[dim]! * size;
      index[dim] = 0;
    }
  }
}

/**
 * Runs an elementwise op (no autograd): operands broadcast together, output contiguous in `dtype`.
 * At least one operand must be a tensor; all tensors share one device.
 */
export function elementwise(
  op: ElementwiseOp,
  operands: readonly Operand[],
  dtype: DType,
  params: ElementwiseParams = {},
): Tensor {
  const tensors = operands.filter((x): x is Tensor => x instanceof Tensor);
  const device = commonDevice(op, tensors);
  const shape = broadcastAll(op, tensors.map((t) => t.shape));
  if (shape.length > MAX_RANK) {
    throw new ShapeError(`${op} supports rank <= ${MAX_RANK}, got ${formatShape(shape)}; reshape to fewer dims first`);
  }
  if (!device.isGpu) {
    const out =
      dtype === 'bool' ? new Uint8Array(numel(shape)) : new (cpuFloatArray(tensors))(numel(shape));
    const inputs = operands.map((x) =>
      typeof x === 'number' ? x : { data: x.data, strides: broadcastStrides(x, shape), offset: x.offset },
    );
    elementwiseCpu(op, inputs, shape, out, params);
    if (dtype === 'f16') for (let i = 0; i < out.length; i++) out[i] = roundToHalf(out[i]!);
    return cpuTensor(device, dtype, out, shape);
  }
  const out = emptyTensor(device, dtype, shape, op);
  const count = numel(shape);
  if (count === 0) return out;
  const pad = MAX_RANK - shape.length;
  const values: Record<string, number> = {
    count,
    alpha: params.alpha ?? 1,
    key0: params.key?.[0] ?? 0,
    key1: params.key?.[1] ?? 0,
    philox_offset: params.philoxOffset ?? 0,
    threshold: params.threshold ?? 0,
  };
  for (let dim = 0; dim < MAX_RANK; dim++) values[`size${dim}`] = dim < pad ? 1 : shape[dim - pad]!;
  const bytes: number[] = [];
  const dense: boolean[] = [];
  const rowMajor = contiguousStrides(shape);
  const buffers: GPUBuffer[] = [];
  INPUTS.forEach((name, i) => {
    const operand = operands[i];
    const strides = operand instanceof Tensor ? broadcastStrides(operand, shape) : [];
    for (let dim = 0; dim < MAX_RANK; dim++) values[`stride_${name}${dim}`] = dim < pad ? 0 : (strides[dim - pad] ?? 0);
    values[`offset_${name}`] = operand instanceof Tensor ? operand.offset : 0;
    values[`scalar_${name}`] = typeof operand === 'number' ? operand : 0;
    bytes.push(operand instanceof Tensor ? bytesPerElement(operand.dtype) : 0);
    // Scalars count as dense: their load ignores the offset.
    dense.push(!(operand instanceof Tensor) || strides.every((stride, dim) => shape[dim] === 1 || stride === rowMajor[dim]));
    buffers.push((operand instanceof Tensor ? operand : tensors[0]!).buffer);
  });
  assertBindable(op, [...tensors, out]);
  const outBytes = bytesPerElement(dtype);
  const code = ELEMENTWISE_OPS[op];
  runKernel(
    device,
    {
      name: 'elementwise',
      variant: `${op}|in=${bytes.join(',')}|out=${outBytes}|dense=${dense.map(Number).join('')}`,
      code: wgsl(op === 'dropout'),
      constants: {
        OP: code,
        BYTES_A: bytes[0]!,
        BYTES_B: bytes[1]!,
        BYTES_C: bytes[2]!,
        OUT_BYTES: outBytes,
        DENSE_A: Number(dense[0]),
        DENSE_B: Number(dense[1]),
        DENSE_C: Number(dense[2]),
      },
    },
    {
      buffers: [...buffers, out.buffer],
      uniforms: layout.pack(values as Parameters<typeof layout.pack>[0]),
      workgroups: workgroupGrid(device, Math.ceil(Math.ceil(count / (4 / outBytes)) / WORDS_PER_WORKGROUP)),
    },
  );
  return out;
}
