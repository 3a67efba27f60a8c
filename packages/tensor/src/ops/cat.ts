import { noGrad, record } from '../autograd';
import { DTypeError, InvalidArgumentError, ShapeError } from '../errors';
import { runKernel, workgroupGrid } from '../kernel';
import { formatShape, normalizeDim, numel, type Shape } from '../shape';
import { emptyTensor, type Tensor } from '../tensor';
import { uniformLayout } from '../uniforms';
import { preprocessWgsl } from '../wgsl';
import { full } from '../creation';
import catSource from './cat.wgsl?raw';
import { elementwise } from './elementwise';
import { assertBindable, checkTensor, commonDevice, cpuFloatArray, cpuTensor } from './operands';

const layout = uniformLayout([
  ['count', 'u32'],
  ['piece', 'u32'],
  ['total', 'u32'],
  ['start', 'u32'],
]);

const kernel = {
  name: 'cat',
  variant: 'u32',
  code: () => preprocessWgsl(catSource, { replacements: { UNIFORMS: layout.wgslStruct('Uniforms') } }),
};

/** Concatenates tensors (same dtype, same shape except along `dim`) along `dim` into a new tensor. */
export function cat(tensors: readonly Tensor[], dim = 0): Tensor {
  if (!Array.isArray(tensors) || tensors.length === 0) {
    throw new InvalidArgumentError('cat needs a non-empty array of tensors');
  }
  const inputs = tensors.map((t, i) => checkTensor(t, 'cat', `tensors[${i}]`));
  const first = inputs[0]!;
  const device = commonDevice('cat', inputs);
  if (first.rank === 0) throw new ShapeError('cat: zero-dim tensors cannot be concatenated; unsqueeze them first');
  const d = normalizeDim(dim, first.rank, 'cat dim');
  inputs.forEach((t, i) => {
    if (t.dtype !== first.dtype) {
      throw new DTypeError(`cat: tensors[${i}] is ${t.dtype} but tensors[0] is ${first.dtype}; cast them to one dtype`);
    }
    if (t.rank !== first.rank || t.shape.some((size, j) => j !== d && size !== first.shape[j])) {
      throw new ShapeError(
        `cat: tensors[${i}] has shape ${formatShape(t.shape)}, incompatible with ${formatShape(first.shape)} (only dim ${d} may differ)`,
      );
    }
  });
  const total = inputs.reduce((n, t) => n + t.shape[d]!, 0);
  const shape = [...first.shape];
  shape[d] = total;
  const inner = numel(first.shape.slice(d + 1));
  const outer = numel(first.shape.slice(0, d));
  let out: Tensor;
  if (!device.isGpu) {
    const values = first.dtype === 'bool' ? new Uint8Array(numel(shape)) : new (cpuFloatArray(inputs))(numel(shape));
    let start = 0;
    for (const t of inputs) {
      const dense = elementwise('identity', [t], t.dtype);
      const source = dense.data;
      const piece = t.shape[d]! * inner;
      for (let row = 0; row < outer; row++) {
        for (let col = 0; col < piece; col++) values[row * total * inner + start + col] = source[row * piece + col]!;
      }
      dense.dispose();
      start += piece;
    }
    out = cpuTensor(device, first.dtype, values, shape);
  } else {
    // 32-bit elements copy as words; f16 and bool go through f32 (exact both ways).
    const wide = 'f32';
    const result = emptyTensor(device, wide, shape, 'cat');
    let start = 0;
    for (const t of inputs) {
      const dense = elementwise('identity', [t], wide);
      const piece = t.shape[d]! * inner;
      const count = outer * piece;
      if (count > 0) {
        assertBindable('cat', [dense, result]);
        runKernel(device, kernel, {
          buffers: [dense.buffer, result.buffer],
          uniforms: layout.pack({ count, piece, total: total * inner, start }),
          workgroups: workgroupGrid(device, Math.ceil(count / 64)),
        });
      }
      dense.dispose();
      start += piece;
    }
    out = result;
    if (first.dtype !== 'f32') {
      out = elementwise('identity', [result], first.dtype);
      result.dispose();
    }
  }
  const sizes = inputs.map((t) => t.shape[d]!);
  return record(out, 'cat', inputs, [], (grad) => {
    let start = 0;
    return sizes.map((size) => {
      const piece = grad.narrow(d, start, size);
      start += size;
      return piece;
    });
  });
}

/** The gradient of x.narrow(dim, start, length): `grad` placed at `start` along `dim`, zeros elsewhere. */
export function narrowBackward(grad: Tensor, inputShape: Shape, dim: number, start: number): Tensor {
  return noGrad(() => {
    const pieces: Tensor[] = [];
    const zerosOf = (length: number) => {
      const shape = [...inputShape];
      shape[dim] = length;
      return full(grad.device, shape, 0, { dtype: grad.dtype });
    };
    const after = inputShape[dim]! - start - grad.shape[dim]!;
    if (start > 0) pieces.push(zerosOf(start));
    pieces.push(grad);
    if (after > 0) pieces.push(zerosOf(after));
    if (pieces.length === 1) return grad.detach();
    const result = cat(pieces, dim);
    for (const piece of pieces) if (piece !== grad) piece.dispose();
    return result;
  });
}

/** Elements start .. start + length − 1 of x along dim: a view sharing x's storage (no copy). */
export function narrow(x: Tensor, dim: number, start: number, length: number): Tensor {
  return checkTensor(x, 'narrow', 'x').narrow(dim, start, length);
}

