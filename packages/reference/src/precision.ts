import { InvalidArgumentError, roundToHalf } from '@webattn/tensor';

/**
 * The precision a reference computes in. 'f64' is the oracle; 'f32' and 'f16' round the inputs and every
 * intermediate (each product, sum, exp, division) to that precision: the same-precision reference whose own
 * error against 'f64' sets how far a fast kernel may be from the oracle.
 */
export type ReferencePrecision = 'f64' | 'f32' | 'f16';

const identity = (x: number): number => x;

export function rounderFor(precision: ReferencePrecision): (x: number) => number {
  switch (precision) {
    case 'f64':
      return identity;
    case 'f32':
      return Math.fround;
    case 'f16':
      return roundToHalf;
    default:
      throw new InvalidArgumentError(`precision must be 'f64', 'f32' or 'f16', got ${String(precision)}`);
  }
}
