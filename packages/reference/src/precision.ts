import { InvalidArgumentError } from '@webattn/tensor';

/**
 * The precision a reference computes in. 'f64' is the oracle; 'f32' and 'f16' round the inputs and every
 * intermediate (each product, sum, exp, division) to that precision: the same-precision reference whose own
 * error against 'f64' sets how far a fast kernel may be from the oracle.
 */
export type ReferencePrecision = 'f64' | 'f32' | 'f16';

const identity = (x: number): number => x;

const scratch = new Float64Array(1);
const scratchWords = new Uint32Array(scratch.buffer);
/** 1.5 · 2^52: adding and subtracting it rounds a double below 2^51 to an integer, ties to even. */
const ROUND_TO_INTEGER = 6755399441055744;

/**
 * The nearest f16 value, as `roundToHalf` from @webattn/tensor computes it (through f32, ties to even), without
 * going through the bits: the f16 reference rounds every intermediate, so this runs millions of times per case.
 */
export function fastRoundToHalf(value: number): number {
  const x = Math.fround(value);
  const magnitude = Math.abs(x);
  if (!(magnitude < 65520)) return Number.isNaN(x) ? Number.NaN : x > 0 ? Number.POSITIVE_INFINITY : Number.NEGATIVE_INFINITY;
  if (magnitude < 6.103515625e-5) return (x * 16777216 + ROUND_TO_INTEGER - ROUND_TO_INTEGER) / 16777216; // subnormal: 2^-24 steps
  scratch[0] = magnitude;
  const quantum = 2 ** (((scratchWords[1]! >>> 20) & 0x7ff) - 1033); // 2^(exponent − 10)
  return (x / quantum + ROUND_TO_INTEGER - ROUND_TO_INTEGER) * quantum;
}

export function rounderFor(precision: ReferencePrecision): (x: number) => number {
  switch (precision) {
    case 'f64':
      return identity;
    case 'f32':
      return Math.fround;
    case 'f16':
      return fastRoundToHalf;
    default:
      throw new InvalidArgumentError(`precision must be 'f64', 'f32' or 'f16', got ${String(precision)}`);
  }
}

/** Σ_d a[aOffset + d] · b[bOffset + d], each product and partial sum rounded to the precision. */
export type RoundedDot = (a: Float64Array, aOffset: number, b: Float64Array, bOffset: number, count: number) => number;
/** target[t + d] += x · values[v + d] for d < count, each product and sum rounded to the precision. */
export type RoundedAccumulate = (
  target: Float64Array,
  targetOffset: number,
  x: number,
  values: Float64Array,
  valuesOffset: number,
  count: number,
) => void;

// One loop per precision, so each inner loop stays monomorphic (no indirect rounding call per element).
const dots: Record<ReferencePrecision, RoundedDot> = {
  f64: (a, ao, b, bo, n) => {
    let sum = 0;
    for (let d = 0; d < n; d++) sum += a[ao + d]! * b[bo + d]!;
    return sum;
  },
  f32: (a, ao, b, bo, n) => {
    let sum = 0;
    for (let d = 0; d < n; d++) sum = Math.fround(sum + Math.fround(a[ao + d]! * b[bo + d]!));
    return sum;
  },
  f16: (a, ao, b, bo, n) => {
    let sum = 0;
    for (let d = 0; d < n; d++) sum = fastRoundToHalf(sum + fastRoundToHalf(a[ao + d]! * b[bo + d]!));
    return sum;
  },
};

const accumulates: Record<ReferencePrecision, RoundedAccumulate> = {
  f64: (t, to, x, v, vo, n) => {
    for (let d = 0; d < n; d++) t[to + d] = t[to + d]! + x * v[vo + d]!;
  },
  f32: (t, to, x, v, vo, n) => {
    for (let d = 0; d < n; d++) t[to + d] = Math.fround(t[to + d]! + Math.fround(x * v[vo + d]!));
  },
  f16: (t, to, x, v, vo, n) => {
    for (let d = 0; d < n; d++) t[to + d] = fastRoundToHalf(t[to + d]! + fastRoundToHalf(x * v[vo + d]!));
  },
};

export function roundedDotFor(precision: ReferencePrecision): RoundedDot {
  rounderFor(precision);
  return dots[precision];
}

export function roundedAccumulateFor(precision: ReferencePrecision): RoundedAccumulate {
  rounderFor(precision);
  return accumulates[precision];
}
