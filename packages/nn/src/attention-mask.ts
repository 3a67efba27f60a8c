/**
 * The one place where PyTorch's MultiheadAttention mask polarity becomes SDPA's.
 *
 * MultiheadAttention (as torch.nn.MultiheadAttention): a bool `keyPaddingMask` [B, S] or `attnMask` [L, S] /
 * [B·H, L, S] is true where a key is masked OUT; a float mask is added to the scores.
 * scaledDotProductAttention: a bool mask is true where a query MAY attend; a float mask is added.
 *
 * Both masks are merged into one SDPA mask broadcastable to [B, H, L, S]: bool stays bool (allowed = neither
 * mask hides the key); if either is float, both become additive (hidden → −∞) and are summed, as PyTorch does.
 */
import {
  DTypeError,
  ShapeError,
  add,
  cast,
  cat,
  formatShape,
  full,
  mul,
  where,
  type Tensor,
} from '@webattn/tensor';
import { Scratch } from './scratch';

export interface MultiheadMaskInput {
  /** [B, S]: true (or −∞) hides key s of batch b. */
  readonly keyPaddingMask?: Tensor | null;
  /** [L, S] or [B·H, L, S]: true (or −∞) hides key s from query l. */
  readonly attnMask?: Tensor | null;
  readonly batch: number;
  readonly heads: number;
  readonly queryLength: number;
  /** S of the projected keys, before addBiasKV / addZeroAttn columns. */
  readonly keyLength: number;
  /** Columns appended after the keys (bias_k, the zero key) that every query may attend. */
  readonly extraKeys: number;
}

/** The merged SDPA mask (bool true = may attend, or additive float), or undefined when there is no mask. */
export function multiheadMaskToSdpa(input: MultiheadMaskInput): Tensor | undefined {
  const { batch, heads, queryLength, keyLength } = input;
  const padding = input.keyPaddingMask ? paddingView(input.keyPaddingMask, batch, keyLength) : null;
  const attention = input.attnMask ? attentionView(input.attnMask, batch, heads, queryLength, keyLength) : null;
  if (!padding && !attention) return undefined;
  const masks = [padding, attention].filter((mask): mask is Tensor => mask !== null);
  const scratch = new Scratch();
  masks.forEach((mask) => scratch.own(mask));
  try {
    let merged: Tensor;
    if (masks.every((mask) => mask.dtype === 'bool')) {
      // allowed = not(padding) and not(attention): 0/1 floats multiplied, then cast back to bool.
      const allowed = masks.map((mask) => scratch.own(where(mask, 0, 1)));
      merged = cast(allowed.length === 2 ? scratch.own(mul(allowed[0]!, allowed[1]!)) : allowed[0]!, 'bool');
    } else {
      const additive = masks.map((mask) =>
        mask.dtype === 'bool' ? scratch.own(where(mask, Number.NEGATIVE_INFINITY, 0)) : mask,
      );
      merged = additive.length === 2 ? add(additive[0]!, additive[1]!) : additive[0]!.reshape(additive[0]!.shape);
    }
    if (input.extraKeys === 0) return merged;
    // The appended keys are visible to every query (PyTorch pads the masks with False / 0 columns).
    scratch.own(merged);
    const padShape = [...merged.shape.slice(0, -1), input.extraKeys];
    const pad = scratch.own(full(merged.device, padShape, merged.dtype === 'bool' ? 1 : 0, { dtype: merged.dtype }));
    return cat([merged, pad], -1);
  } finally {
    scratch.dispose();
  }
}

function checkMaskDtype(mask: Tensor, name: string): void {
  if (mask.dtype !== 'bool' && mask.dtype !== 'f32' && mask.dtype !== 'f16') {
    throw new DTypeError(`MultiheadAttention: ${name} must be bool (true = masked out) or float (added), got ${mask.dtype}`);
  }
}

/** [B, S] → view [B, 1, 1, S]. */
function paddingView(mask: Tensor, batch: number, keyLength: number): Tensor {
  checkMaskDtype(mask, 'keyPaddingMask');
  if (mask.rank !== 2 || mask.shape[0] !== batch || mask.shape[1] !== keyLength) {
    throw new ShapeError(
      `MultiheadAttention: keyPaddingMask must be [batch, keyLength] = [${batch}, ${keyLength}], got ${formatShape(mask.shape)}`,
    );
  }
  return mask.reshape([batch, 1, 1, keyLength]);
}

/** [L, S] → view [1, 1, L, S]; [B·H, L, S] → [B, H, L, S]. */
function attentionView(mask: Tensor, batch: number, heads: number, queryLength: number, keyLength: number): Tensor {
  checkMaskDtype(mask, 'attnMask');
  if (mask.rank === 2 && mask.shape[0] === queryLength && mask.shape[1] === keyLength) {
    return mask.reshape([1, 1, queryLength, keyLength]);
  }
  if (
    mask.rank === 3 &&
    mask.shape[0] === batch * heads &&
    mask.shape[1] === queryLength &&
    mask.shape[2] === keyLength
  ) {
    return mask.reshape([batch, heads, queryLength, keyLength]);
  }
  throw new ShapeError(
    `MultiheadAttention: attnMask must be [L, S] = [${queryLength}, ${keyLength}] or [B·numHeads, L, S] = [${batch * heads}, ${queryLength}, ${keyLength}], got ${formatShape(mask.shape)}`,
  );
}
