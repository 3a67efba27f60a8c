/**
 * The attention variants the kernel benchmark times (`--options`): each name turns on one feature, and names
 * joined with '+' combine ("padding+dropout"). The FLOP count ignores padding and varlen's shorter sequences (as
 * PyTorch's timing script does for padding), so their TFLOP/s compare with "none"'s, and halves for causal.
 */
import { InvalidArgumentError, attentionFlops } from '@webattn/tensor';

export const OPTION_NAMES = ['none', 'padding', 'padding-mask', 'varlen', 'dropout', 'causal'] as const;
export type OptionName = (typeof OPTION_NAMES)[number];

export const OPTION_DESCRIPTIONS: Record<OptionName, string> = {
  none: 'plain attention',
  padding: 'key padding as per-batch key lengths (keyLengths), lengths drawn in [N/2, N]',
  'padding-mask': 'the same key padding as a [B, 1, 1, S] bool attnMask',
  varlen: 'B sequences packed into q, k, v [total, H, D] (cuSeqlensQ = cuSeqlensK), lengths drawn in [N/2, N] like padding',
  dropout: 'dropout p = 0.1 (the attention dropout stream, fixed seed)',
  causal: 'isCausal (top-left)',
};

export const BENCH_DROPOUT_P = 0.1;

export interface OptionSet {
  /** As given, normalised: "none", "padding", "padding+dropout", ... */
  readonly name: string;
  readonly keyLengths: boolean;
  readonly boolMask: boolean;
  /** Packed varlen: B sequences of padding's drawn lengths packed into [total, H, D], cuSeqlensQ = cuSeqlensK. */
  readonly varlen: boolean;
  readonly dropout: number;
  readonly causal: boolean;
}

export function parseOptionSet(text: string): OptionSet {
  const parts = text.split('+').map((part) => part.trim());
  const unknown = parts.filter((part) => !OPTION_NAMES.includes(part as OptionName));
  if (unknown.length > 0 || parts.length === 0) {
    throw new InvalidArgumentError(
      `unknown option set "${text}": use ${OPTION_NAMES.join(', ')}, or join several with '+' (e.g. padding+dropout)`,
    );
  }
  const names = new Set(parts as OptionName[]);
  if (names.has('none') && names.size > 1) throw new InvalidArgumentError(`option set "${text}": 'none' cannot be combined`);
  if (names.has('padding') && names.has('padding-mask')) {
    throw new InvalidArgumentError(`option set "${text}": choose one of padding (key lengths) and padding-mask (bool mask)`);
  }
  // The attention API refuses keyLengths and attnMask beside cuSeqlens: the sequence lengths already end every sequence.
  const padding = (['padding', 'padding-mask'] as const).filter((name) => names.has(name));
  if (names.has('varlen') && padding.length > 0) {
    throw new InvalidArgumentError(
      `option set "${text}": varlen cannot be combined with ${padding.join(' or ')}; its sequence lengths already are the padding`,
    );
  }
  return {
    name: OPTION_NAMES.filter((name) => names.has(name)).join('+'),
    keyLengths: names.has('padding'),
    boolMask: names.has('padding-mask'),
    varlen: names.has('varlen'),
    dropout: names.has('dropout') ? BENCH_DROPOUT_P : 0,
    causal: names.has('causal'),
  };
}

/**
 * Forward FLOPs, 4·B·H·L·S·D, halved for causal (the count PyTorch's torch_sdpa.py uses too). Padded keys and
 * varlen's shorter sequences count as full length N, so each option's TFLOP/s is "none"'s work over its time.
 */
export function forwardFlops(shape: { batch: number; heads: number; length: number; headDim: number }, set: OptionSet): number {
  const { batch, heads, length, headDim } = shape;
  const full = attentionFlops({ batch, queryHeads: heads, queryLength: length, keyLength: length, headDimQk: headDim });
  return set.causal ? full / 2 : full;
}

/** Backward FLOPs: 2.5× the forward's (FlashAttention's convention: 5 matmuls against the forward's 2). */
export const BACKWARD_FLOP_FACTOR = 2.5;
