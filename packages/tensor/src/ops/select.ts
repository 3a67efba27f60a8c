import { record } from '../autograd';
import { ShapeError } from '../errors';
import { formatShape, sameShape } from '../shape';
import { Tensor } from '../tensor';
import { broadcastAll, reduceToShape } from './broadcast';
import { elementwise } from './elementwise';
import { assertBool, assertFiniteNumber, checkOperand, checkTensor, commonDevice, type Operand } from './operands';

function reduceAndFree(grad: Tensor, shape: readonly number[]): Tensor {
  const reduced = reduceToShape(grad, shape);
  if (reduced !== grad) grad.dispose();
  return reduced;
}

/**
 * condition ? a : b elementwise, all three broadcast together. `condition` is a bool tensor; a and b may be
 * numbers. The result's dtype is that of the tensor values (f32 when mixed, bool when both are bool).
 */
export function where(condition: Tensor, a: Operand, b: Operand): Tensor {
  const mask = checkTensor(condition, 'where', 'condition');
  assertBool(mask, 'where', 'condition');
  const x = checkOperand(a, 'where', 'a');
  const y = checkOperand(b, 'where', 'b');
  const values = [x, y].filter((v): v is Tensor => v instanceof Tensor);
  commonDevice('where', [mask, ...values]);
  const dtypes = new Set(values.map((t) => t.dtype));
  const dtype = dtypes.size === 0 ? 'f32' : dtypes.size === 1 ? values[0]!.dtype : dtypes.has('f32') || dtypes.has('bool') ? 'f32' : 'f16';
  const out = elementwise('where', [mask, x, y], dtype);
  return record(out, 'where', [mask, x, y], [mask], (grad, [m]) => [
    null,
    x instanceof Tensor && x.requiresGrad ? reduceAndFree(elementwise('where', [m!, grad, 0], grad.dtype), x.shape) : null,
    y instanceof Tensor && y.requiresGrad ? reduceAndFree(elementwise('where', [m!, 0, grad], grad.dtype), y.shape) : null,
  ]);
}

/** x with `value` wherever the bool `mask` (broadcastable to x's shape) is true. */
export function maskedFill(x: Tensor, mask: Tensor, value: number): Tensor {
  const input = checkTensor(x, 'maskedFill', 'x');
  const m = checkTensor(mask, 'maskedFill', 'mask');
  assertBool(m, 'maskedFill', 'mask');
  assertFiniteNumber(value, 'maskedFill', 'value');
  const shape = broadcastAll('maskedFill', [input.shape, m.shape]);
  if (!sameShape(shape, input.shape)) {
    throw new ShapeError(
      `maskedFill: mask ${formatShape(m.shape)} must broadcast to x ${formatShape(input.shape)} without growing it`,
    );
  }
  commonDevice('maskedFill', [input, m]);
  const out = elementwise('where', [m, value, input], input.dtype);
  return record(out, 'maskedFill', [input, m], [m], (grad, [saved]) => [
    elementwise('where', [saved!, 0, grad], grad.dtype),
    null,
  ]);
}
