import { record } from '../autograd';
import { runKernel, workgroupGrid } from '../kernel';
import { normalizeDim } from '../shape';
import { emptyTensor, type Tensor } from '../tensor';
import { uniformLayout } from '../uniforms';
import { composeWgsl } from '../wgsl';
import { cast } from './cast';
import { elementwise } from './elementwise';
import { assertBindable, assertFloat, checkTensor, cpuFloatArray, cpuTensor } from './operands';
import { sum } from './reduce';
import { asRows, inverseOrder } from './rows';
import softmaxSource from './softmax.wgsl?raw';
import workgroupReduceSource from './workgroup-reduce.wgsl?raw';

const layout = uniformLayout([
  ['rows', 'u32'],
  ['cols', 'u32'],
]);

const code = () => composeWgsl([workgroupReduceSource, softmaxSource], { replacements: { UNIFORMS: layout.wgslStruct('Uniforms') } });

/** CPU kernel (pure): softmax or log-softmax of each row of a dense [rows, cols] matrix, max subtracted first. */
export function softmaxRowsCpu(
  input: ArrayLike<number>,
  rows: number,
  cols: number,
  logarithm: boolean,
  out: Float32Array | Float64Array,
): void {
  for (let row = 0; row < rows; row++) {
    const base = row * cols;
    let largest = Number.NEGATIVE_INFINITY;
    for (let col = 0; col < cols; col++) largest = Math.max(largest, input[base + col]!);
    if (largest === Number.NEGATIVE_INFINITY) largest = -3.4028234663852886e38; // as the kernel: all −∞ → NaN
    let total = 0;
    for (let col = 0; col < cols; col++) total += Math.exp(input[base + col]! - largest);
    const logTotal = Math.log(total);
    for (let col = 0; col < cols; col++) {
      const shifted = input[base + col]! - largest;
      out[base + col] = logarithm ? shifted - logTotal : Math.exp(shifted) / total;
    }
  }
}

function softmaxAlong(op: 'softmax' | 'logSoftmax', x: Tensor, dim: number): Tensor {
  const input = checkTensor(x, op, 'x');
  assertFloat(input, op, 'x');
  const d = normalizeDim(dim, input.rank, `${op} dim`);
  const order = input.rank === 0 ? [] : [...input.shape.keys()].filter((i) => i !== d).concat([d]);
  const { matrix, rows, cols, shape } = asRows(input, order, input.rank === 0 ? 0 : 1);
  const logarithm = op === 'logSoftmax';
  let dense: Tensor;
  if (!input.device.isGpu) {
    const values = new (cpuFloatArray([matrix]))(rows * cols);
    softmaxRowsCpu(matrix.data, rows, cols, logarithm, values);
    dense = cpuTensor(input.device, 'f32', values, shape);
  } else {
    dense = emptyTensor(input.device, 'f32', shape, op);
    if (rows * cols > 0) {
      assertBindable(op, [matrix, dense]);
      runKernel(
        input.device,
        { name: 'softmax', variant: logarithm ? 'log' : 'plain', code, constants: { LOG_SOFTMAX: logarithm ? 1 : 0 } },
        {
          buffers: [matrix.buffer, dense.buffer],
          uniforms: layout.pack({ rows, cols }),
          workgroups: workgroupGrid(input.device, rows),
        },
      );
    }
  }
  matrix.dispose();
  let out = dense.permute(inverseOrder(order));
  dense.dispose();
  if (input.dtype === 'f16') {
    const half = cast(out, 'f16');
    out.dispose();
    out = half;
  }
  return record(out, op, [input], [out], (grad, [y]) => {
    if (logarithm) {
      // dx = g − exp(y) · Σ g
      const total = sum(grad, d, true);
      const probabilities = elementwise('exp', [y!], y!.dtype);
      const product = elementwise('mul', [probabilities, total], grad.dtype);
      const result = elementwise('sub', [grad, product], grad.dtype);
      [total, probabilities, product].forEach((t) => t.dispose());
      return [result];
    }
    // dx = y · (g − Σ g·y)
    const weighted = elementwise('mul', [grad, y!], grad.dtype);
    const total = sum(weighted, d, true);
    const centered = elementwise('sub', [grad, total], grad.dtype);
    const result = elementwise('mul', [y!, centered], grad.dtype);
    [weighted, total, centered].forEach((t) => t.dispose());
    return [result];
  });
}

/** Softmax along `dim` (max subtracted first). */
export function softmax(x: Tensor, dim: number): Tensor {
  return softmaxAlong('softmax', x, dim);
}

/** log(softmax(x)) along `dim`, computed stably as x − max − log Σ exp(x − max). */
export function logSoftmax(x: Tensor, dim: number): Tensor {
  return softmaxAlong('logSoftmax', x, dim);
}
