/**
 * The shared vocabulary of attention backends: one `AttentionProblem` describes a call completely (sizes,
 * layouts, mask, causal alignment, window, dropout, what outputs are needed) so that every backend's checks,
 * kernels and the dispatcher talk about the same thing. Backends receive it together with the buffers or tensors.
 *
 * Conventions (all backends and the reference follow them):
 * - q is [B, Hq, L, Dqk], k is [B, Hkv, S, Dqk], v is [B, Hkv, S, Dv], out is [B, Hq, L, Dv] as logical shapes;
 *   `layout` gives each tensor's element strides, so [B, L, H, D] memory works without copies.
 * - GQA: query head h reads kv head floor(h · Hkv / Hq) (Hq a multiple of Hkv).
 * - score(i, j) = scale · q_i·k_j; with softcap c: c · tanh(score / c); then the additive mask is added; then
 *   bool-mask false, causal, window, key padding and varlen bounds remove (i, j).
 * - Aligned position of row i: pos(i) = i ('top-left', PyTorch's is_causal) or i + S − L ('bottom-right',
 *   FlashAttention's). Causal allows j ≤ pos(i); window (left, right) allows pos(i) − left ≤ j ≤ pos(i) + right,
 *   where −1 means unbounded on that side.
 * - A row with no allowed key: output 0, logsumexp −∞, zero gradients (PyTorch gives NaN there).
 * - Dropout: element (b, h, i, j) is kept iff attentionDropoutWord(attentionDropoutStream(seed, offset), b·Hq + h,
 *   i, j) ≥ attentionDropoutThreshold(p) (16-bit values: kept with probability within 2^-16 of 1 − p); kept
 *   probabilities are scaled by 1 / (1 − p). For varlen, b is the sequence index and i, j are positions within the
 *   sequence.
 */
import type { DType } from './dtype';

export type CausalAlignment = 'top-left' | 'bottom-right';

/** Element strides of a logical [batch, heads, sequence, dim] tensor, plus its element offset. */
export interface AttentionLayout {
  readonly batch: number;
  readonly head: number;
  readonly sequence: number;
  readonly dim: number;
  readonly offset: number;
}

/** The attention mask as the kernel reads it: strides over [B, H, L, S], 0 where the mask broadcasts. */
export type AttentionMask =
  | { readonly kind: 'none' }
  | {
      /** 'bool': true (1) = may attend. 'additive': added to the scores (−∞ removes). */
      readonly kind: 'bool' | 'additive';
      readonly dtype: DType;
      readonly strides: { readonly batch: number; readonly head: number; readonly row: number; readonly column: number };
      readonly offset: number;
    };

export interface AttentionDropout {
  readonly p: number;
  readonly seed: number;
  readonly offset: number;
}

export interface AttentionProblem {
  /** Sequences: B (for packed varlen, the number of sequences: cuSeqlens length − 1). */
  readonly batch: number;
  readonly queryHeads: number;
  readonly kvHeads: number;
  /** L; for packed varlen, the longest query sequence (maxSeqlenQ). */
  readonly queryLength: number;
  /** S; for packed varlen, the longest key sequence (maxSeqlenK). */
  readonly keyLength: number;
  readonly headDimQk: number;
  readonly headDimV: number;
  /** Dtype of q, k, v and out (softmax statistics and accumulation are f32 in every kernel). */
  readonly dtype: 'f32' | 'f16';
  readonly scale: number;
  readonly layout: {
    readonly q: AttentionLayout;
    readonly k: AttentionLayout;
    readonly v: AttentionLayout;
    readonly out: AttentionLayout;
  };
  readonly mask: AttentionMask;
  /** Per-batch valid key counts (keys j ≥ keyLengths[b] are masked): a key-padding fast path. */
  readonly keyLengths: boolean;
  /** Packed variable-length batches: sequence b has rows cuSeqlensQ[b]..cuSeqlensQ[b+1] (same for keys). */
  readonly varlen: boolean;
  readonly causal: boolean;
  /** Sliding window, −1 = unbounded; aligned like causal. */
  readonly window: { readonly left: number; readonly right: number } | null;
  /** How causal and window align rows to keys when L ≠ S (default 'top-left', as PyTorch). */
  readonly causalAlignment: CausalAlignment;
  readonly softcap: number | null;
  readonly dropout: AttentionDropout | null;
  /** The caller wants the attention weights (only backends that materialise them can run). */
  readonly needWeights: boolean;
  /** Backward will be needed (the forward must keep what backward uses, e.g. the logsumexp). */
  readonly requiresGrad: boolean;
}

/** Why a backend cannot run a problem: one per failed check, readable on its own. */
export interface Rejection {
  /** 'flash', 'efficient', 'math', 'cpu', ... */
  readonly backend: string;
  /** The check's name, e.g. 'headDim'. */
  readonly check: string;
  /** "flash: head dim 320 > 256 (workgroup storage 49152 B holds at most 256)" */
  readonly message: string;
  readonly got: string | number;
  readonly need: string;
}

export function rejection(backend: string, check: string, got: string | number, need: string, why = ''): Rejection {
  return {
    backend,
    check,
    got,
    need,
    message: `${backend}: ${check} ${got}, need ${need}${why ? ` (${why})` : ''}`,
  };
}

/** Layout of a contiguous [B, H, N, D] tensor. */
export function bhndLayout(heads: number, sequence: number, dim: number, offset = 0): AttentionLayout {
  return { batch: heads * sequence * dim, head: sequence * dim, sequence: dim, dim: 1, offset };
}

/** Layout of a contiguous [B, N, H, D] tensor (seen as [B, H, N, D]). */
export function bnhdLayout(heads: number, sequence: number, dim: number, offset = 0): AttentionLayout {
  return { batch: sequence * heads * dim, head: dim, sequence: heads * dim, dim: 1, offset };
}

/** The aligned position of query row i (see the conventions above). */
export function alignedPosition(row: number, queryLength: number, keyLength: number, alignment: CausalAlignment): number {
  return alignment === 'top-left' ? row : row + keyLength - queryLength;
}

/** FLOPs of a forward pass as benchmarks count them: 4·B·H·L·S·D (halved for causal by the caller). */
export function attentionFlops(problem: Pick<AttentionProblem, 'batch' | 'queryHeads' | 'queryLength' | 'keyLength' | 'headDimQk'>): number {
  return 4 * problem.batch * problem.queryHeads * problem.queryLength * problem.keyLength * problem.headDimQk;
}
