import { DTypeError } from './errors';

/**
 * Element types. Storage:
 * - `f32`: 4 bytes per element (Float32Array on the CPU).
 * - `f16`: 2 bytes per element on the GPU (WGSL `f16`, or two halves of a `u32` read with unpack2x16float);
 *   on the CPU a Float32Array whose values are rounded to the nearest f16. `toArray()` returns a Float32Array.
 * - `bool`: 1 byte per element (0 or 1), packed four to a 32-bit word on the GPU; Uint8Array on the CPU.
 */
export type DType = 'f32' | 'f16' | 'bool';

export const DTYPES: readonly DType[] = ['f32', 'f16', 'bool'];

/** Bytes one element takes in GPU storage. */
export function bytesPerElement(dtype: DType): number {
  switch (dtype) {
    case 'f32':
      return 4;
    case 'f16':
      return 2;
    case 'bool':
      return 1;
  }
}

export function assertDType(value: unknown): DType {
  if (value === 'f32' || value === 'f16' || value === 'bool') return value;
  throw new DTypeError(`unknown dtype ${JSON.stringify(value)}; use one of 'f32', 'f16', 'bool'`);
}

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** IEEE half bits of a number, rounded to nearest even (as WGSL's f16 conversion and pack2x16float do). */
export function toHalfBits(value: number): number {
  f32Scratch[0] = value;
  const x = u32Scratch[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exponent = (x >>> 23) & 0xff;
  let mantissa = x & 0x7fffff;
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa !== 0 ? 0x200 : 0);
  const e = exponent - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mantissa |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    let rounded = mantissa >>> shift;
    const rest = mantissa & ((1 << shift) - 1);
    if (rest > half || (rest === half && (rounded & 1) === 1)) rounded += 1;
    return sign | rounded;
  }
  let bits = (e << 10) | (mantissa >>> 13);
  const rest = mantissa & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (bits & 1) === 1)) bits += 1;
  return sign | bits;
}

/** The number an IEEE half encodes. */
export function fromHalfBits(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >>> 10) & 0x1f;
  const mantissa = bits & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  if (exponent === 0x1f) return mantissa ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}

/** Rounds a number to the nearest f16 value (what storing it as f16 keeps). */
export function roundToHalf(value: number): number {
  return fromHalfBits(toHalfBits(value));
}
