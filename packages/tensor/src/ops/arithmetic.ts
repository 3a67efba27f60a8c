import { InvalidArgumentError } from '../errors';
import { Tensor } from '../tensor';
import { record } from '../autograd';
import { reduceToShape } from './broadcast';
import { elementwise, type ElementwiseOp } from './elementwise';
import { assertFiniteNumber, assertFloat, checkOperand, checkTensor, promoteFloat, type Operand } from './operands';

function tensorsOf(operands: readonly Operand[]): Tensor[] {
  return operands.filter((x): x is Tensor => x instanceof Tensor);
}

function binaryOperands(op: string, a: unknown, b: unknown): [Operand, Operand] {
  const left = checkOperand(a, op, 'a');
  const right = checkOperand(b, op, 'b');
  if (typeof left === 'number' && typeof right === 'number') {
    throw new InvalidArgumentError(`${op} needs at least one Tensor, got two numbers (${left}, ${right})`);
  }
  return [left, right];
}

function binary(op: ElementwiseOp, a: Operand, b: Operand): Tensor {
  return elementwise(op, [a, b], promoteFloat(tensorsOf([a, b])));
}

const gradFor = (operand: Operand, grad: () => Tensor): Tensor | null =>
  operand instanceof Tensor && operand.requiresGrad ? reduceAndFree(grad(), operand) : null;

function reduceAndFree(grad: Tensor, input: Tensor): Tensor {
  const reduced = reduceToShape(grad, input.shape);
  if (reduced !== grad) grad.dispose();
  return reduced;
}

/** a + b with PyTorch broadcasting; either may be a number. */
export function add(a: Operand, b: Operand): Tensor {
  const [x, y] = binaryOperands('add', a, b);
  return record(binary('add', x, y), 'add', [x, y], [], (grad) => [
    gradFor(x, () => grad.detach()),
    gradFor(y, () => grad.detach()),
  ]);
}

/** a − b with broadcasting. */
export function sub(a: Operand, b: Operand): Tensor {
  const [x, y] = binaryOperands('sub', a, b);
  return record(binary('sub', x, y), 'sub', [x, y], [], (grad) => [
    gradFor(x, () => grad.detach()),
    gradFor(y, () => neg(grad)),
  ]);
}

/** a · b elementwise with broadcasting. */
export function mul(a: Operand, b: Operand): Tensor {
  const [x, y] = binaryOperands('mul', a, b);
  const save = tensorsOf([x, y]);
  return record(binary('mul', x, y), 'mul', [x, y], save, (grad, saved) => {
    const [sx, sy] = [x instanceof Tensor ? saved[0]! : x, y instanceof Tensor ? saved[save.length - 1]! : y];
    return [gradFor(x, () => binary('mul', grad, sy)), gradFor(y, () => binary('mul', grad, sx))];
  });
}

/** a / b elementwise with broadcasting. */
export function div(a: Operand, b: Operand): Tensor {
  const [x, y] = binaryOperands('div', a, b);
  const save = tensorsOf([x, y]);
  return record(binary('div', x, y), 'div', [x, y], save, (grad, saved) => {
    const [sx, sy] = [x instanceof Tensor ? saved[0]! : x, y instanceof Tensor ? saved[save.length - 1]! : y];
    return [
      gradFor(x, () => binary('div', grad, sy)),
      gradFor(y, () => {
        // d(a/b)/db = −a / b²
        const numerator = binary('mul', grad, sx);
        const denominator = binary('mul', sy, sy);
        const quotient = binary('div', numerator, denominator);
        numerator.dispose();
        denominator.dispose();
        const negated = elementwise('neg', [quotient], quotient.dtype);
        quotient.dispose();
        return negated;
      }),
    ];
  });
}

function unary(op: ElementwiseOp, x: unknown, name: string = op): Tensor {
  const input = checkTensor(x, name, 'x');
  assertFloat(input, name, 'x');
  return elementwise(op, [input], input.dtype);
}

/** −x */
export function neg(x: Tensor): Tensor {
  const out = unary('neg', x);
  return record(out, 'neg', [x], [], (grad) => [neg(grad)]);
}

/** eˣ */
export function exp(x: Tensor): Tensor {
  const out = unary('exp', x);
  return record(out, 'exp', [x], [out], (grad, [y]) => [elementwise('mul', [grad, y!], grad.dtype)]);
}

/** Natural logarithm. */
export function log(x: Tensor): Tensor {
  const out = unary('log', x);
  return record(out, 'log', [x], [x], (grad, [input]) => [elementwise('div', [grad, input!], grad.dtype)]);
}

/** Square root. */
export function sqrt(x: Tensor): Tensor {
  const out = unary('sqrt', x);
  return record(out, 'sqrt', [x], [out], (grad, [y]) => {
    const half = elementwise('div', [grad, y!], grad.dtype);
    const result = elementwise('scale', [half], grad.dtype, { alpha: 0.5 });
    half.dispose();
    return [result];
  });
}

/** max(x, 0) */
export function relu(x: Tensor): Tensor {
  const out = unary('relu', x);
  return record(out, 'relu', [x], [x], (grad, [input]) => [elementwise('reluBackward', [grad, input!], grad.dtype)]);
}

/** GELU, exact erf form (PyTorch's default): x · Φ(x). */
export function gelu(x: Tensor): Tensor {
  const out = unary('gelu', x);
  return record(out, 'gelu', [x], [x], (grad, [input]) => [elementwise('geluBackward', [grad, input!], grad.dtype)]);
}

/** x · s for a number s. */
export function scale(x: Tensor, s: number): Tensor {
  const input = checkTensor(x, 'scale', 'x');
  assertFloat(input, 'scale', 'x');
  const factor = assertFiniteNumber(s, 'scale', 's');
  const out = elementwise('scale', [input], input.dtype, { alpha: factor });
  return record(out, 'scale', [input], [], (grad) => [elementwise('scale', [grad], grad.dtype, { alpha: factor })]);
}

/** A contiguous copy with its own storage (same dtype). */
export function copy(x: Tensor): Tensor {
  const input = checkTensor(x, 'copy', 'x');
  const out = elementwise('identity', [input], input.dtype);
  return record(out, 'copy', [input], [], (grad) => [grad]);
}
