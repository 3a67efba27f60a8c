import type { Device } from './device';
import { assertDType, type DType } from './dtype';
import { DTypeError, ShapeError } from './errors';
import { elementWord, seedKey } from './philox';
import { assertShape, formatShape, numel, type Shape } from './shape';
import { fromValues, type Tensor } from './tensor';

export interface TensorOptions {
  readonly dtype?: DType;
  readonly requiresGrad?: boolean;
}

export interface RandomOptions extends TensorOptions {
  /** Philox seed: the same seed gives the same values on every device. Default: a random seed. */
  readonly seed?: number;
}

type Nested = number | boolean | readonly Nested[];

function flatten(data: Nested, shape: number[], values: number[], depth: number): void {
  if (Array.isArray(data)) {
    if (shape.length === depth) shape.push(data.length);
    else if (shape[depth] !== data.length) {
      throw new ShapeError(`ragged nested array: dimension ${depth} has lengths ${shape[depth]} and ${data.length}`);
    }
    for (const item of data) flatten(item as Nested, shape, values, depth + 1);
  } else {
    if (depth !== shape.length && shape.length > 0) throw new ShapeError('ragged nested array');
    values.push(typeof data === 'boolean' ? Number(data) : (data as number));
  }
}

function finish(t: Tensor, options: TensorOptions): Tensor {
  if (options.requiresGrad) {
    if (t.dtype === 'bool') throw new DTypeError('a bool tensor cannot require gradients; use f32 or f16');
    t.requiresGrad = true;
  }
  return t;
}

/**
 * A tensor from values: a flat array (or typed array) with `shape`, or a nested array whose nesting gives the
 * shape. dtype defaults to 'bool' for booleans / Uint8Array, else 'f32'.
 */
export function tensor(
  device: Device,
  data: Nested | ArrayLike<number>,
  shape?: Shape,
  options: TensorOptions = {},
): Tensor {
  let values: ArrayLike<number>;
  let resolvedShape: number[];
  const guessBool = data instanceof Uint8Array || (Array.isArray(data) && typeof data.flat(Infinity)[0] === 'boolean');
  if (ArrayBuffer.isView(data) || (Array.isArray(data) && shape && !data.some((x) => Array.isArray(x)))) {
    values = Array.isArray(data) ? (data as unknown[]).map((x) => Number(x)) : (data as ArrayLike<number>);
    resolvedShape = shape ? [...shape] : [values.length];
  } else {
    const flat: number[] = [];
    const nestedShape: number[] = [];
    flatten(data as Nested, nestedShape, flat, 0);
    values = flat;
    resolvedShape = shape ? [...shape] : nestedShape;
  }
  assertShape(resolvedShape);
  if (numel(resolvedShape) !== values.length) {
    throw new ShapeError(
      `${values.length} values do not fill shape ${formatShape(resolvedShape)} (${numel(resolvedShape)} elements)`,
    );
  }
  const dtype = assertDType(options.dtype ?? (guessBool ? 'bool' : 'f32'));
  return finish(fromValues(device, dtype, values, resolvedShape), options);
}

export function full(device: Device, shape: Shape, value: number, options: TensorOptions = {}): Tensor {
  assertShape(shape);
  const dtype = assertDType(options.dtype ?? 'f32');
  return finish(fromValues(device, dtype, new Float32Array(numel(shape)).fill(value), shape), options);
}

export const zeros = (device: Device, shape: Shape, options: TensorOptions = {}): Tensor =>
  full(device, shape, 0, options);

export const ones = (device: Device, shape: Shape, options: TensorOptions = {}): Tensor =>
  full(device, shape, 1, options);

let seedCounter = 0x5eed;
const nextSeed = () => (seedCounter = (seedCounter * 1103515245 + 12345 + Date.now()) % 2 ** 31);

/** Values drawn from Philox words `elementWord(seed, 0, i)`: uniform in [0, 1). */
export function rand(device: Device, shape: Shape, options: RandomOptions = {}): Tensor {
  assertShape(shape);
  const key = seedKey(options.seed ?? nextSeed());
  const values = new Float64Array(numel(shape));
  for (let i = 0; i < values.length; i++) values[i] = elementWord(key, 0, i) / 4294967296;
  return finish(fromValues(device, assertDType(options.dtype ?? 'f32'), values, shape), options);
}

/** Standard normal values (Box–Muller over Philox words): the same seed gives the same values everywhere. */
export function randn(device: Device, shape: Shape, options: RandomOptions = {}): Tensor {
  assertShape(shape);
  const key = seedKey(options.seed ?? nextSeed());
  const count = numel(shape);
  const values = new Float64Array(count);
  for (let i = 0; i < count; i += 2) {
    const u1 = (elementWord(key, 1, i) + 1) / 4294967297; // (0, 1]
    const u2 = elementWord(key, 1, i + 1) / 4294967296;
    const radius = Math.sqrt(-2 * Math.log(u1));
    values[i] = radius * Math.cos(2 * Math.PI * u2);
    if (i + 1 < count) values[i + 1] = radius * Math.sin(2 * Math.PI * u2);
  }
  return finish(fromValues(device, assertDType(options.dtype ?? 'f32'), values, shape), options);
}
