import {
  InvalidArgumentError,
  Storage,
  Tensor,
  attentionKeep,
  contiguousStrides,
  cpuDevice,
  describeAttention,
  attentionDropoutThreshold,
  attentionDropoutStream,
  type AttentionOptions,
  type AttentionProblem,
  type CausalAlignment,
} from '@webattn/tensor';
import { sequenceBounds, type SequenceBounds } from './attention-geometry';
import { assertHostTensor, hostStrides, isBoolHostTensor, type HostTensor } from './host-tensor';
import {
  roundedAccumulateFor,
  roundedDotFor,
  rounderFor,
  type ReferencePrecision,
  type RoundedAccumulate,
  type RoundedDot,
} from './precision';

/** AttentionOptions for plain arrays: the mask is a HostTensor; plus the precision to compute in. */
export interface ReferenceOptions extends Omit<AttentionOptions, 'attnMask'> {
  readonly attnMask?: HostTensor;
  /** 'f64' (default): the oracle. 'f32'/'f16': the same-precision reference (inputs and intermediates rounded). */
  readonly precision?: ReferencePrecision;
}

/**
 * q, k or v copied into row-major order of its logical shape ([B, H, N, D], or packed [total, H, D]), rounded to
 * the precision. `rowOffset(b, head, row)` gives the index of element d = 0 (row counted in the tensor).
 */
export interface PlannedInput {
  readonly values: Float64Array;
  readonly rowOffset: (b: number, head: number, row: number) => number;
}

/** Everything the reference loops need, resolved once. */
export interface ReferencePlan {
  readonly problem: AttentionProblem;
  readonly sequences: readonly SequenceBounds[];
  readonly round: (x: number) => number;
  readonly dot: RoundedDot;
  readonly accumulate: RoundedAccumulate;
  readonly q: PlannedInput;
  readonly k: PlannedInput;
  readonly v: PlannedInput;
  /** The mask at (b, h, i, j): bool → 0/1, additive → value; undefined without a mask. */
  readonly mask: ((b: number, head: number, row: number, column: number) => number) | undefined;
  /** Index into a contiguous gradient of the mask's own shape (broadcast dims summed), for additive masks. */
  readonly maskGradientIndex: ((b: number, head: number, row: number, column: number) => number) | undefined;
  readonly maskShape: readonly number[] | undefined;
  /** 0 for dropped elements, else the kept scale 1 / (1 − p) (1 without dropout). */
  readonly dropoutFactor: (b: number, head: number, row: number, column: number) => number;
  /** Shapes of the outputs. */
  readonly qShape: readonly number[];
  readonly kShape: readonly number[];
  readonly vShape: readonly number[];
  readonly outShape: readonly number[];
}

const SHAPE_ONLY = new Float32Array(0);

/** A CPU tensor carrying only shape and strides, so describeAttention validates plain arrays exactly as tensors. */
function shapeOnly(t: HostTensor, dtype: 'f32' | 'bool'): Tensor {
  return new Tensor(
    Storage.onCpu(cpuDevice(), dtype, dtype === 'bool' ? new Uint8Array(0) : SHAPE_ONLY),
    t.shape,
    hostStrides(t),
    t.offset ?? 0,
  );
}

function planInput(
  t: HostTensor,
  problem: AttentionProblem,
  name: 'q' | 'k' | 'v',
  round: (x: number) => number,
): PlannedInput {
  const layout = problem.layout[name];
  const packed = problem.varlen;
  const [batches, heads, rows, dim] = packed ? [1, t.shape[1]!, t.shape[0]!, t.shape[2]!] : (t.shape as [number, number, number, number]);
  const values = new Float64Array(batches * heads * rows * dim);
  const data = t.data;
  const rowOffset = packed
    ? (_b: number, head: number, row: number) => (row * heads + head) * dim
    : (b: number, head: number, row: number) => ((b * heads + head) * rows + row) * dim;
  for (let b = 0; b < batches; b++) {
    for (let head = 0; head < heads; head++) {
      for (let row = 0; row < rows; row++) {
        const target = rowOffset(b, head, row);
        const source = layout.offset + b * layout.batch + head * layout.head + row * layout.sequence;
        for (let d = 0; d < dim; d++) values[target + d] = round(data[source + d * layout.dim]!);
      }
    }
  }
  return { values, rowOffset };
}

export function planReference(q: HostTensor, k: HostTensor, v: HostTensor, options: ReferenceOptions): ReferencePlan {
  const names: [string, HostTensor][] = [
    ['q', q],
    ['k', k],
    ['v', v],
  ];
  if (options.attnMask) names.push(['attnMask', options.attnMask]);
  for (const [name, t] of names) assertHostTensor(name, t);
  const { attnMask, precision, ...rest } = options;
  const tensorOptions: AttentionOptions = {
    ...rest,
    ...(attnMask ? { attnMask: shapeOnly(attnMask, isBoolHostTensor(attnMask) ? 'bool' : 'f32') } : {}),
  };
  const problem = describeAttention(shapeOnly(q, 'f32'), shapeOnly(k, 'f32'), shapeOnly(v, 'f32'), tensorOptions);
  return planFromProblem(problem, q, k, v, options);
}

/** The plan for an already validated problem (the tensor entry points validate the tensors themselves). */
export function planFromProblem(
  problem: AttentionProblem,
  q: HostTensor,
  k: HostTensor,
  v: HostTensor,
  options: ReferenceOptions,
): ReferencePlan {
  const round = rounderFor(options.precision ?? 'f64');
  const sequences = sequenceBounds(problem, options);
  let mask: ReferencePlan['mask'];
  let maskGradientIndex: ReferencePlan['maskGradientIndex'];
  let maskShape: readonly number[] | undefined;
  const maskTensor = options.attnMask;
  if (problem.mask.kind !== 'none' && maskTensor) {
    const { strides, offset } = problem.mask;
    const data = maskTensor.data;
    const bool = problem.mask.kind === 'bool';
    mask = (b, head, row, column) => {
      const value = data[offset + b * strides.batch + head * strides.head + row * strides.row + column * strides.column]!;
      return bool ? (value ? 1 : 0) : round(value);
    };
    maskShape = maskTensor.shape;
    const own = contiguousStrides(maskTensor.shape);
    const lead = 4 - maskTensor.shape.length;
    const gradient = [0, 1, 2, 3].map((axis) =>
      axis < lead || maskTensor.shape[axis - lead] === 1 ? 0 : own[axis - lead]!,
    ) as [number, number, number, number];
    maskGradientIndex = (b, head, row, column) =>
      b * gradient[0] + head * gradient[1] + row * gradient[2] + column * gradient[3];
  }
  let dropoutFactor: ReferencePlan['dropoutFactor'] = () => 1;
  if (problem.dropout) {
    const { p, seed, offset } = problem.dropout;
    const stream = attentionDropoutStream(seed, offset);
    const threshold = attentionDropoutThreshold(p);
    const keptScale = round(1 / (1 - p));
    const heads = problem.queryHeads;
    dropoutFactor = (b, head, row, column) =>
      attentionKeep(stream, threshold, b * heads + head, row, column) ? keptScale : 0;
  }
  if (options.precision !== undefined && !['f64', 'f32', 'f16'].includes(options.precision)) {
    throw new InvalidArgumentError(`precision must be 'f64', 'f32' or 'f16', got ${String(options.precision)}`);
  }
  const { batch, queryHeads: hq, kvHeads: hkv, queryLength: l, keyLength: s, headDimQk: dqk, headDimV: dv } = problem;
  const packed = problem.varlen;
  const totalQ = packed ? q.shape[0]! : 0;
  const totalK = packed ? k.shape[0]! : 0;
  return {
    problem,
    sequences,
    round,
    dot: roundedDotFor(options.precision ?? 'f64'),
    accumulate: roundedAccumulateFor(options.precision ?? 'f64'),
    q: planInput(q, problem, 'q', round),
    k: planInput(k, problem, 'k', round),
    v: planInput(v, problem, 'v', round),
    mask,
    maskGradientIndex,
    maskShape,
    dropoutFactor,
    qShape: packed ? [totalQ, hq, dqk] : [batch, hq, l, dqk],
    kShape: packed ? [totalK, hkv, dqk] : [batch, hkv, s, dqk],
    vShape: packed ? [totalK, hkv, dv] : [batch, hkv, s, dv],
    outShape: packed ? [totalQ, hq, dv] : [batch, hq, l, dv],
  };
}

/** Index of element (b, head, row, d) in a contiguous output of q's (or k's) logical shape. */
export function outputIndex(
  plan: ReferencePlan,
  heads: number,
  dim: number,
  rowsPerBatch: number,
  b: number,
  head: number,
  row: number,
  d: number,
): number {
  return plan.problem.varlen ? (row * heads + head) * dim + d : ((b * heads + head) * rowsPerBatch + row) * dim + d;
}
