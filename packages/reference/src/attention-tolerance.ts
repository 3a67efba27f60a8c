/**
 * FlashAttention's tolerance rule: a fast kernel's error against the float64 oracle may be at most a small
 * multiple of the error a same-precision reference makes against that oracle, plus a tiny absolute floor:
 *
 *   maxAbs(actual − oracle) ≤ multiple · maxAbs(samePrecision − oracle) + floor · max(1, maxAbs(oracle))
 *
 * The same-precision reference (attentionReference with precision 'f32' or 'f16') rounds inputs and every
 * intermediate to the kernel's dtype, so the bound scales with how hard the case is (long rows, large logits,
 * f16) instead of being one hand-tuned epsilon. Infinities must match exactly (−∞ logsumexp of a fully masked
 * row); NaN always fails.
 */
export interface AttentionToleranceRule {
  /** Allowed multiple of the same-precision reference's error (FlashAttention uses 2; we use 3 by default). */
  readonly multiple: number;
  /** Absolute floor relative to max(1, the oracle's largest magnitude), for cases where rounding is exact. */
  readonly floor: number;
}

export const ATTENTION_TOLERANCE: Readonly<Record<'f32' | 'f16', AttentionToleranceRule>> = {
  f32: { multiple: 3, floor: 2 ** -22 },
  f16: { multiple: 3, floor: 2 ** -14 },
};

export interface AttentionComparison {
  /** maxAbs(actual − oracle) over finite entries (Infinity if NaN or an infinity mismatch). */
  readonly error: number;
  /** maxAbs(samePrecision − oracle). */
  readonly referenceError: number;
  readonly tolerance: number;
  readonly index: number;
  readonly pass: boolean;
}

function maxAbsError(actual: ArrayLike<number>, oracle: ArrayLike<number>): { value: number; index: number } {
  let value = 0;
  let index = -1;
  for (let i = 0; i < oracle.length; i++) {
    const a = actual[i]!;
    const o = oracle[i]!;
    let diff: number;
    if (Number.isNaN(a)) diff = Number.POSITIVE_INFINITY;
    else if (!Number.isFinite(o) || !Number.isFinite(a)) diff = a === o ? 0 : Number.POSITIVE_INFINITY;
    else diff = Math.abs(a - o);
    if (diff > value) {
      value = diff;
      index = i;
    }
  }
  return { value, index };
}

/** The allowed error for a quantity, from the same-precision reference's own error. */
export function attentionTolerance(
  samePrecision: ArrayLike<number>,
  oracle: ArrayLike<number>,
  dtype: 'f32' | 'f16',
  rule: AttentionToleranceRule = ATTENTION_TOLERANCE[dtype],
): number {
  const referenceError = maxAbsError(samePrecision, oracle).value;
  let magnitude = 1;
  for (let i = 0; i < oracle.length; i++) {
    const o = Math.abs(oracle[i]!);
    if (Number.isFinite(o)) magnitude = Math.max(magnitude, o);
  }
  return rule.multiple * referenceError + rule.floor * magnitude;
}

export function compareAttention(
  actual: ArrayLike<number>,
  oracle: ArrayLike<number>,
  samePrecision: ArrayLike<number>,
  dtype: 'f32' | 'f16',
  rule: AttentionToleranceRule = ATTENTION_TOLERANCE[dtype],
): AttentionComparison {
  if (actual.length !== oracle.length) {
    return { error: Number.POSITIVE_INFINITY, referenceError: 0, tolerance: 0, index: -1, pass: false };
  }
  const { value: error, index } = maxAbsError(actual, oracle);
  const tolerance = attentionTolerance(samePrecision, oracle, dtype, rule);
  return { error, referenceError: maxAbsError(samePrecision, oracle).value, tolerance, index, pass: error <= tolerance };
}

/** Throws (naming the quantity, the error, the bound and the seed to replay) unless the tolerance rule holds. */
export function expectAttentionClose(
  what: string,
  actual: ArrayLike<number>,
  oracle: ArrayLike<number>,
  samePrecision: ArrayLike<number>,
  dtype: 'f32' | 'f16',
  seed?: number,
  rule: AttentionToleranceRule = ATTENTION_TOLERANCE[dtype],
): AttentionComparison {
  const result = compareAttention(actual, oracle, samePrecision, dtype, rule);
  if (!result.pass) {
    const at = result.index >= 0 ? ` at [${result.index}]: got ${actual[result.index]}, oracle ${oracle[result.index]}` : '';
    throw new Error(
      `${what}: max error ${result.error.toExponential(3)} exceeds ${rule.multiple} × same-precision error ${result.referenceError.toExponential(3)} + floor = ${result.tolerance.toExponential(3)}${at}` +
        (actual.length !== oracle.length ? ` (length ${actual.length}, expected ${oracle.length})` : '') +
        (seed !== undefined ? `; replay with WEBATTN_SEED=${seed}` : ''),
    );
  }
  return result;
}
