import { record } from '../autograd';
import { ShapeError } from '../errors';
import { runKernel, workgroupGrid } from '../kernel';
import { formatShape, sameShape } from '../shape';
import { emptyTensor, type Tensor } from '../tensor';
import { uniformLayout } from '../uniforms';
import { composeWgsl } from '../wgsl';
import { add, mul } from './arithmetic';
import { cast } from './cast';
import { elementwise } from './elementwise';
import layerNormSource from './layer-norm.wgsl?raw';
import workgroupReduceSource from './workgroup-reduce.wgsl?raw';
import {
  assertBindable,
  assertFiniteNumber,
  assertFloat,
  checkTensor,
  commonDevice,
  cpuFloatArray,
  cpuTensor,
} from './operands';
import { mean } from './reduce';
import { asRows } from './rows';

const layout = uniformLayout([
  ['rows', 'u32'],
  ['cols', 'u32'],
  ['eps', 'f32'],
]);

const kernel = {
  name: 'layer-norm',
  variant: 'f32',
  code: () => composeWgsl([workgroupReduceSource, layerNormSource], { replacements: { UNIFORMS: layout.wgslStruct('Uniforms') } }),
};

/** CPU kernel (pure): per row, normalized = (x − mean) · rstd with rstd = 1/sqrt(biased var + eps). */
export function layerNormRowsCpu(
  input: ArrayLike<number>,
  rows: number,
  cols: number,
  eps: number,
  normalized: Float32Array | Float64Array,
  inverseStd: Float32Array | Float64Array,
): void {
  for (let row = 0; row < rows; row++) {
    const base = row * cols;
    let total = 0;
    for (let col = 0; col < cols; col++) total += input[base + col]!;
    const average = total / cols;
    let squares = 0;
    for (let col = 0; col < cols; col++) squares += (input[base + col]! - average) ** 2;
    const rstd = 1 / Math.sqrt(squares / cols + eps);
    for (let col = 0; col < cols; col++) normalized[base + col] = (input[base + col]! - average) * rstd;
    inverseStd[row] = rstd;
  }
}

/** (x − mean) / sqrt(var + eps) over the last `dims` dims, with its gradient. */
function normalize(x: Tensor, dims: number, eps: number): Tensor {
  const { matrix, rows, cols } = asRows(x, [...x.shape.keys()], dims);
  let normalized: Tensor;
  let inverseStd: Tensor;
  if (!x.device.isGpu) {
    const Float = cpuFloatArray([matrix]);
    const values = new Float(rows * cols);
    const rstd = new Float(rows);
    layerNormRowsCpu(matrix.data, rows, cols, eps, values, rstd);
    normalized = cpuTensor(x.device, 'f32', values, [rows, cols]);
    inverseStd = cpuTensor(x.device, 'f32', rstd, [rows, 1]);
  } else {
    normalized = emptyTensor(x.device, 'f32', [rows, cols], 'layer-norm');
    inverseStd = emptyTensor(x.device, 'f32', [rows, 1], 'layer-norm rstd');
    if (rows * cols > 0) {
      assertBindable('layerNorm', [matrix, normalized]);
      runKernel(x.device, kernel, {
        buffers: [matrix.buffer, normalized.buffer, inverseStd.buffer],
        uniforms: layout.pack({ rows, cols, eps }),
        workgroups: workgroupGrid(x.device, rows),
      });
    }
  }
  matrix.dispose();
  const out = normalized.reshape(x.shape);
  const inputShape = x.shape;
  record(out, 'layerNorm', [x], [normalized, inverseStd], (grad, [xhat, rstd]) => {
    // dx = rstd · (g − mean(g) − xhat · mean(g · xhat)), means over each row.
    const g = grad.reshape([rows, cols]);
    const meanGrad = mean(g, 1, true);
    const product = elementwise('mul', [g, xhat!], 'f32');
    const meanProduct = mean(product, 1, true);
    const centered = elementwise('sub', [g, meanGrad], 'f32');
    const projection = elementwise('mul', [xhat!, meanProduct], 'f32');
    const difference = elementwise('sub', [centered, projection], 'f32');
    const dx = elementwise('mul', [difference, rstd!], 'f32');
    const result = dx.reshape(inputShape);
    [g, meanGrad, product, meanProduct, centered, projection, difference, dx].forEach((t) => t.dispose());
    return [result];
  });
  normalized.dispose();
  inverseStd.dispose();
  return out;
}

/**
 * Layer normalisation over the trailing `normalizedShape` dims (PyTorch semantics: biased variance, eps inside
 * the square root), then `· weight + bias` when given (both shaped `normalizedShape`). Computed in f32; the
 * result has x's dtype.
 */
export function layerNorm(
  x: Tensor,
  normalizedShape: number | readonly number[],
  weight?: Tensor | null,
  bias?: Tensor | null,
  eps = 1e-5,
): Tensor {
  const input = checkTensor(x, 'layerNorm', 'x');
  assertFloat(input, 'layerNorm', 'x');
  const trailing = typeof normalizedShape === 'number' ? [normalizedShape] : [...normalizedShape];
  const tail = input.shape.slice(input.rank - trailing.length);
  if (trailing.length === 0 || trailing.length > input.rank || !sameShape(tail, trailing)) {
    throw new ShapeError(
      `layerNorm: normalizedShape ${formatShape(trailing)} must equal the trailing dims of x ${formatShape(input.shape)}`,
    );
  }
  assertFiniteNumber(eps, 'layerNorm', 'eps');
  const affine: Tensor[] = [];
  for (const [name, t] of [['weight', weight], ['bias', bias]] as const) {
    if (t === undefined || t === null) continue;
    checkTensor(t, 'layerNorm', name);
    assertFloat(t, 'layerNorm', name);
    if (!sameShape(t.shape, trailing)) {
      throw new ShapeError(
        `layerNorm: ${name} has shape ${formatShape(t.shape)}, expected normalizedShape ${formatShape(trailing)}`,
      );
    }
    affine.push(t);
  }
  commonDevice('layerNorm', [input, ...affine]);
  let out = normalize(input, trailing.length, eps);
  if (weight) {
    const scaled = mul(out, weight);
    out.dispose();
    out = scaled;
  }
  if (bias) {
    const shifted = add(out, bias);
    out.dispose();
    out = shifted;
  }
  if (out.dtype !== input.dtype) {
    const converted = cast(out, input.dtype);
    out.dispose();
    out = converted;
  }
  return out;
}
