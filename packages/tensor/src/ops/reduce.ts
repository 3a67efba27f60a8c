import { record } from '../autograd';
import { runKernel, workgroupGrid } from '../kernel';
import { normalizeDim } from '../shape';
import { emptyTensor, type Tensor } from '../tensor';
import { uniformLayout } from '../uniforms';
import { composeWgsl } from '../wgsl';
import { cast } from './cast';
import { elementwise } from './elementwise';
import { assertBindable, checkTensor, cpuFloatArray, cpuTensor } from './operands';
import reduceSource from './reduce.wgsl?raw';
import workgroupReduceSource from './workgroup-reduce.wgsl?raw';
import { asRows, orderWithLast } from './rows';

const layout = uniformLayout([
  ['rows', 'u32'],
  ['cols', 'u32'],
  ['alpha', 'f32'],
]);

const kernel = {
  name: 'row-sum',
  variant: 'f32',
  code: () => composeWgsl([workgroupReduceSource, reduceSource], { replacements: { UNIFORMS: layout.wgslStruct('Uniforms') } }),
};

/** CPU kernel (pure): out[r] = alpha · Σ_c input[r · cols + c]. */
export function rowSumsCpu(input: ArrayLike<number>, rows: number, cols: number, alpha: number, out: Float32Array | Float64Array): void {
  for (let row = 0; row < rows; row++) {
    let total = 0;
    const base = row * cols;
    for (let col = 0; col < cols; col++) total += input[base + col]!;
    out[row] = total * alpha;
  }
}

function resolveDims(x: Tensor, dims: number | readonly number[] | undefined, op: string): number[] {
  if (dims === undefined || (Array.isArray(dims) && dims.length === 0)) return x.shape.map((_, dim) => dim);
  const list = typeof dims === 'number' ? [dims] : dims;
  const resolved = list.map((dim) => normalizeDim(dim, x.rank, `${op} dim`));
  return [...new Set(resolved)].sort((a, b) => a - b);
}

function reduce(op: 'sum' | 'mean', x: Tensor, dims: number | readonly number[] | undefined, keepDim: boolean): Tensor {
  const input = checkTensor(x, op, 'x');
  const reduced = input.rank === 0 ? [] : resolveDims(input, dims, op);
  const { matrix, rows, cols, shape } = asRows(input, orderWithLast(input.rank, reduced), reduced.length);
  const alpha = op === 'mean' ? 1 / cols : 1;
  const outShape = keepDim
    ? input.shape.map((size, dim) => (reduced.includes(dim) ? 1 : size))
    : shape.slice(0, shape.length - reduced.length);
  let out: Tensor;
  if (!input.device.isGpu) {
    const values = new (cpuFloatArray([matrix]))(rows);
    rowSumsCpu(matrix.data, rows, cols, alpha, values);
    out = cpuTensor(input.device, 'f32', values, outShape);
  } else {
    out = emptyTensor(input.device, 'f32', outShape, op);
    if (rows > 0) {
      assertBindable(op, [matrix, out]);
      runKernel(input.device, kernel, {
        buffers: [matrix.buffer, out.buffer],
        uniforms: layout.pack({ rows, cols, alpha }),
        workgroups: workgroupGrid(input.device, rows),
      });
    }
  }
  matrix.dispose();
  if (input.dtype === 'f16') {
    const half = cast(out, 'f16');
    out.dispose();
    out = half;
  }
  const inputShape = input.shape;
  const keptShape = inputShape.map((size, dim) => (reduced.includes(dim) ? 1 : size));
  return record(out, op, [input], [], (grad) => {
    const kept = grad.reshape(keptShape);
    const expanded = kept.expand(inputShape);
    kept.dispose();
    if (op === 'sum') return [expanded];
    const scaled = elementwise('scale', [expanded], grad.dtype, { alpha });
    expanded.dispose();
    return [scaled];
  });
}

/** Sum over `dims` (all when undefined); keepDim leaves size-1 dims in place. */
export function sum(x: Tensor, dims?: number | readonly number[], keepDim = false): Tensor {
  return reduce('sum', x, dims, keepDim);
}

/** Mean over `dims` (all when undefined); keepDim leaves size-1 dims in place. */
export function mean(x: Tensor, dims?: number | readonly number[], keepDim = false): Tensor {
  return reduce('mean', x, dims, keepDim);
}
