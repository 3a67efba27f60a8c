import { noGrad, record } from '../autograd';
import { ResourceLimitError, ShapeError } from '../errors';
import { runKernel } from '../kernel';
import { formatShape, numel } from '../shape';
import { emptyTensor, type Tensor } from '../tensor';
import { uniformLayout } from '../uniforms';
import { preprocessWgsl } from '../wgsl';
import { broadcastAll, broadcastStrides, reduceToShape } from './broadcast';
import { cast } from './cast';
import { elementwise } from './elementwise';
import matmulSource from './matmul.wgsl?raw';
import { assertBindable, assertFloat, checkTensor, commonDevice, cpuFloatArray, cpuTensor, promoteFloat } from './operands';

export interface MatmulOptions {
  /** Use a's last two dims transposed: a is [..., K, M]. */
  readonly transposeA?: boolean;
  /** Use b's last two dims transposed: b is [..., N, K]. */
  readonly transposeB?: boolean;
}

const MAX_BATCH_RANK = 4;
const TILE = 64;

const layout = uniformLayout([
  ['m', 'u32'],
  ['n', 'u32'],
  ['k', 'u32'],
  ['batch_start', 'u32'],
  ...Array.from({ length: MAX_BATCH_RANK }, (_, i) => [`batch${i}`, 'u32'] as const),
  ['a_offset', 'u32'],
  ['a_row', 'u32'],
  ['a_col', 'u32'],
  ...Array.from({ length: MAX_BATCH_RANK }, (_, i) => [`a_batch${i}`, 'u32'] as const),
  ['b_offset', 'u32'],
  ['b_row', 'u32'],
  ['b_col', 'u32'],
  ...Array.from({ length: MAX_BATCH_RANK }, (_, i) => [`b_batch${i}`, 'u32'] as const),
]);

const kernel = {
  name: 'matmul',
  variant: 'f32|tile=64x64x16',
  code: () => preprocessWgsl(matmulSource, { replacements: { UNIFORMS: layout.wgslStruct('Uniforms') } }),
};

/** A strided matrix operand: element (batch offset) + row · rowStride + col · colStride. */
export interface MatrixOperand {
  readonly data: ArrayLike<number>;
  readonly offset: number;
  readonly rowStride: number;
  readonly colStride: number;
  /** Element offset of each output batch (length = batch count). */
  readonly batchOffsets: readonly number[];
}

/** CPU kernel (pure): out[batch, m, n] = Σ_k a[batch, m, k] · b[batch, k, n]. */
export function matmulCpu(a: MatrixOperand, b: MatrixOperand, m: number, n: number, k: number, out: Float32Array | Float64Array): void {
  const row = new Float64Array(n);
  a.batchOffsets.forEach((aBatch, batch) => {
    const bBatch = b.batchOffsets[batch]!;
    for (let i = 0; i < m; i++) {
      row.fill(0);
      for (let p = 0; p < k; p++) {
        const av = a.data[a.offset + aBatch + i * a.rowStride + p * a.colStride]!;
        const bBase = b.offset + bBatch + p * b.rowStride;
        for (let j = 0; j < n; j++) row[j]! += av * b.data[bBase + j * b.colStride]!;
      }
      out.set(row, (batch * m + i) * n);
    }
  });
}

/** Element offset of each batch (row-major over the broadcast batch shape). */
function batchOffsets(batchShape: readonly number[], strides: readonly number[]): number[] {
  const offsets = new Array<number>(numel(batchShape));
  for (let index = 0; index < offsets.length; index++) {
    let rest = index;
    let offset = 0;
    for (let dim = batchShape.length - 1; dim >= 0; dim--) {
      offset += (rest % batchShape[dim]!) * strides[dim]!;
      rest = Math.floor(rest / batchShape[dim]!);
    }
    offsets[index] = offset;
  }
  return offsets;
}

function matmulForward(a: Tensor, b: Tensor): Tensor {
  // a [..., M, K], b [..., K, N] (views already transposed as asked).
  const m = a.shape[a.rank - 2]!;
  const k = a.shape[a.rank - 1]!;
  const n = b.shape[b.rank - 1]!;
  const batchShape = broadcastAll('matmul', [a.shape.slice(0, -2), b.shape.slice(0, -2)]);
  if (batchShape.length > MAX_BATCH_RANK) {
    throw new ShapeError(`matmul supports at most ${MAX_BATCH_RANK} batch dims, got ${formatShape(batchShape)}; reshape first`);
  }
  const aBatchStrides = broadcastStrides({ shape: a.shape.slice(0, -2), strides: a.strides.slice(0, -2) }, batchShape);
  const bBatchStrides = broadcastStrides({ shape: b.shape.slice(0, -2), strides: b.strides.slice(0, -2) }, batchShape);
  const batches = numel(batchShape);
  const outShape = [...batchShape, m, n];
  const device = a.device;
  if (!device.isGpu) {
    const out = new (cpuFloatArray([a, b]))(batches * m * n);
    matmulCpu(
      { data: a.data, offset: a.offset, rowStride: a.strides[a.rank - 2]!, colStride: a.strides[a.rank - 1]!, batchOffsets: batchOffsets(batchShape, aBatchStrides) },
      { data: b.data, offset: b.offset, rowStride: b.strides[b.rank - 2]!, colStride: b.strides[b.rank - 1]!, batchOffsets: batchOffsets(batchShape, bBatchStrides) },
      m,
      n,
      k,
      out,
    );
    return cpuTensor(device, 'f32', out, outShape);
  }
  const out = emptyTensor(device, 'f32', outShape, 'matmul');
  if (batches * m * n === 0) return out;
  const pad = MAX_BATCH_RANK - batchShape.length;
  const values: Record<string, number> = {
    m,
    n,
    k,
    a_offset: a.offset,
    a_row: a.strides[a.rank - 2]!,
    a_col: a.strides[a.rank - 1]!,
    b_offset: b.offset,
    b_row: b.strides[b.rank - 2]!,
    b_col: b.strides[b.rank - 1]!,
  };
  for (let dim = 0; dim < MAX_BATCH_RANK; dim++) {
    values[`batch${dim}`] = dim < pad ? 1 : batchShape[dim - pad]!;
    values[`a_batch${dim}`] = dim < pad ? 0 : aBatchStrides[dim - pad]!;
    values[`b_batch${dim}`] = dim < pad ? 0 : bBatchStrides[dim - pad]!;
  }
  const limit = device.caps.maxComputeWorkgroupsPerDimension || 65535;
  if (Math.ceil(n / TILE) > limit || Math.ceil(m / TILE) > limit) {
    throw new ResourceLimitError(
      `matmul: an output of ${m}×${n} needs more than ${limit} workgroups along one dimension (64×64 tiles); split it`,
      m * n * 4,
      limit * TILE * 4,
    );
  }
  assertBindable('matmul', [a, b, out]);
  for (let start = 0; start < batches; start += limit) {
    values.batch_start = start;
    runKernel(device, kernel, {
      buffers: [a.buffer, b.buffer, out.buffer],
      uniforms: layout.pack(values as Parameters<typeof layout.pack>[0]),
      workgroups: [Math.ceil(n / TILE), Math.ceil(m / TILE), Math.min(limit, batches - start)],
    });
  }
  return out;
}

const lastTwoSwapped = (x: Tensor): Tensor => x.transpose(x.rank - 2, x.rank - 1);

/**
 * Batched matrix product with f32 accumulation: a [..., M, K] · b [..., K, N] → [..., M, N], batch dims
 * broadcast (PyTorch rules). transposeA / transposeB read a as [..., K, M] / b as [..., N, K] without a copy.
 * Any strides work (transposed or permuted views are read in place).
 */
export function matmul(a: Tensor, b: Tensor, options: MatmulOptions = {}): Tensor {
  const left = checkTensor(a, 'matmul', 'a');
  const right = checkTensor(b, 'matmul', 'b');
  assertFloat(left, 'matmul', 'a');
  assertFloat(right, 'matmul', 'b');
  commonDevice('matmul', [left, right]);
  for (const [name, t] of [['a', left], ['b', right]] as const) {
    if (t.rank < 2) {
      throw new ShapeError(`matmul: ${name} must have rank >= 2, got ${formatShape(t.shape)}; unsqueeze vectors to [1, n] or [n, 1]`);
    }
  }
  const dtype = promoteFloat([left, right]);
  const [effectiveA, effectiveB] = noGrad(() => [
    options.transposeA ? lastTwoSwapped(left) : left.detach(),
    options.transposeB ? lastTwoSwapped(right) : right.detach(),
  ]);
  const kA = effectiveA.shape[effectiveA.rank - 1]!;
  const kB = effectiveB.shape[effectiveB.rank - 2]!;
  if (kA !== kB) {
    effectiveA.dispose();
    effectiveB.dispose();
    throw new ShapeError(
      `matmul: inner dims differ: a${options.transposeA ? 'ᵀ' : ''} ${formatShape(effectiveA.shape)} has K=${kA}, b${options.transposeB ? 'ᵀ' : ''} ${formatShape(effectiveB.shape)} has K=${kB}; check transposeA/transposeB`,
    );
  }
  const asF32 = (t: Tensor) => (t.dtype === 'f32' ? t.detach() : elementwise('identity', [t], 'f32'));
  const a32 = asF32(effectiveA);
  const b32 = asF32(effectiveB);
  let out = matmulForward(a32, b32);
  [a32, b32, effectiveA, effectiveB].forEach((t) => t.dispose());
  if (dtype === 'f16') {
    const half = cast(out, 'f16');
    out.dispose();
    out = half;
  }
  const transposeA = options.transposeA ?? false;
  const transposeB = options.transposeB ?? false;
  return record(out, 'matmul', [left, right], [left, right], (grad, [sa, sb]) => {
    const grads: (Tensor | null)[] = [null, null];
    if (left.requiresGrad) {
      // d(opA) = g · opB^T; dA = transposeA ? d(opA)^T
      const product = transposeA
        ? matmul(sb!, grad, { transposeA: transposeB, transposeB: true })
        : matmul(grad, sb!, { transposeB: !transposeB });
      grads[0] = reduceAndFree(product, left.shape);
    }
    if (right.requiresGrad) {
      // d(opB) = opA^T · g; dB = transposeB ? d(opB)^T
      const product = transposeB
        ? matmul(grad, sa!, { transposeA: true, transposeB: transposeA })
        : matmul(sa!, grad, { transposeA: !transposeA });
      grads[1] = reduceAndFree(product, right.shape);
    }
    return grads;
  });
}

function reduceAndFree(grad: Tensor, shape: readonly number[]): Tensor {
  const reduced = reduceToShape(grad, shape);
  if (reduced !== grad) grad.dispose();
  return reduced;
}
