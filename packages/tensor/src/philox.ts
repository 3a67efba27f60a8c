import { InvalidArgumentError } from './errors';
import philoxSource from './philox.wgsl?raw';

/**
 * Counter-based Philox 4×32 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3"), the same bits on the
 * CPU and in WGSL (`PHILOX_WGSL`). A random word is a pure function of (key, counter), so a kernel's dropout mask
 * can be regenerated anywhere: in a backward pass or in the float64 reference. Element dropout draws with 10
 * rounds and 32-bit words; attention dropout (attention-dropout.ts) draws each call's stream key with it.
 */
export const PHILOX_WGSL: string = philoxSource;

const M0 = 0xd2511f53;
const M1 = 0xcd9e8d57;
const W0 = 0x9e3779b9;
const W1 = 0xbb67ae85;

/** High 32 bits of the 64-bit product of two u32 (exact in float64 arithmetic). */
function mulHi(a: number, b: number): number {
  const low = a * (b & 0xffff); // < 2^48, exact
  const high = a * (b >>> 16); // < 2^48, exact
  const highTop = Math.floor(high / 65536);
  const highBottom = high % 65536;
  return (highTop + Math.floor((highBottom * 65536 + low) / 4294967296)) >>> 0;
}

/** Philox 4×32 with `rounds` rounds (default 10): four random u32 words for a 4-word counter and a 2-word key. */
export function philox4x32(
  counter: readonly [number, number, number, number],
  key: readonly [number, number],
  rounds = 10,
): [number, number, number, number] {
  let [c0, c1, c2, c3] = counter.map((x) => x >>> 0) as [number, number, number, number];
  let k0 = key[0] >>> 0;
  let k1 = key[1] >>> 0;
  for (let round = 0; round < rounds; round++) {
    const hi0 = mulHi(M0, c0);
    const lo0 = Math.imul(M0, c0) >>> 0;
    const hi1 = mulHi(M1, c2);
    const lo1 = Math.imul(M1, c2) >>> 0;
    c0 = (hi1 ^ c1 ^ k0) >>> 0;
    c1 = lo1;
    c2 = (hi0 ^ c3 ^ k1) >>> 0;
    c3 = lo0;
    k0 = (k0 + W0) >>> 0;
    k1 = (k1 + W1) >>> 0;
  }
  return [c0, c1, c2, c3];
}

/** A seed (integer in [0, 2^53)) as Philox's two key words. */
export function seedKey(seed: number): [number, number] {
  if (!Number.isSafeInteger(seed) || seed < 0) {
    throw new InvalidArgumentError(`seed must be an integer in [0, 2^53), got ${seed}`);
  }
  return [seed % 4294967296 >>> 0, Math.floor(seed / 4294967296) >>> 0];
}

/**
 * The u32 threshold below which a random word means "drop" (element dropout): an element is kept when its word is
 * ≥ threshold, so it is kept with probability 1 - threshold / 2^32 ≈ 1 - p. Kernels receive this value in a uniform.
 */
export function dropoutThreshold(p: number): number {
  if (!(p >= 0 && p < 1)) throw new InvalidArgumentError(`dropout probability must be in [0, 1), got ${p}`);
  return Math.min(4294967295, Math.floor(p * 4294967296));
}

/**
 * The random word for element `index` of a flat tensor: counter = (index >> 2 low, index >> 34, 0xffffffff,
 * offset), word = index & 3 (the 0xffffffff keeps this stream apart from attention's). WGSL twin: `element_word`.
 */
export function elementWord(key: readonly [number, number], offset: number, index: number): number {
  const group = Math.floor(index / 4);
  return philox4x32([group % 4294967296 >>> 0, Math.floor(group / 4294967296) >>> 0, 0xffffffff, offset], key)[
    index & 3
  ]!;
}

/** A uniform float in [0, 1) from a random word. */
export function wordToUniform(word: number): number {
  return word / 4294967296;
}
