/**
 * Dropout needs the same Philox seed and offset in forward and backward. When the caller gives none, the
 * dispatcher draws them once per call and passes them explicitly to the forward and to the backward it records.
 */
export interface DropoutSeed {
  readonly seed: number;
  readonly offset: number;
}

/** A fresh 31-bit seed from crypto.getRandomValues (Node ≥ 19 and browsers), else Math.random. */
export function drawDropoutSeed(): number {
  const crypto = (globalThis as { crypto?: { getRandomValues?<T extends ArrayBufferView>(array: T): T } }).crypto;
  if (crypto?.getRandomValues) return crypto.getRandomValues(new Uint32Array(1))[0]! >>> 1;
  return Math.floor(Math.random() * 2 ** 31);
}

/** The seed and offset this call uses: the caller's, or freshly drawn when dropout is on and none was given. */
export function resolveDropoutSeed(options: {
  readonly dropoutP?: number;
  readonly dropoutSeed?: number;
  readonly dropoutOffset?: number;
}): DropoutSeed | null {
  if (!options.dropoutP) return null;
  return { seed: options.dropoutSeed ?? drawDropoutSeed(), offset: options.dropoutOffset ?? 0 };
}
