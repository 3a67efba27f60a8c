/** What the attention playground runs: one scaledDotProductAttention call, described by a form. */
import type { CausalAlignment } from '@webattn/tensor';

export const MASK_KINDS = ['none', 'key-padding', 'bool', 'additive'] as const;
export type MaskKind = (typeof MASK_KINDS)[number];

export const MASK_LABELS: Record<MaskKind, string> = {
  none: 'none',
  'key-padding': 'key padding (key lengths per batch)',
  bool: 'bool (random, true = may attend)',
  additive: 'additive (ALiBi bias per head)',
};

/** 'auto' lets the dispatcher choose; a backend name forces it (the call fails, with every reason, if it cannot run). */
export const BACKEND_CHOICES = ['auto', 'flash', 'efficient', 'math', 'cpu'] as const;
export type BackendChoice = (typeof BACKEND_CHOICES)[number];

export interface PlaygroundConfig {
  readonly batch: number;
  readonly heads: number;
  /** L: query rows. */
  readonly queryLength: number;
  /** S: key rows (L ≠ S shows what the causal alignment changes). */
  readonly keyLength: number;
  readonly headDim: number;
  readonly dtype: 'f32' | 'f16';
  readonly mask: MaskKind;
  readonly causal: boolean;
  readonly alignment: CausalAlignment;
  readonly dropoutP: number;
  /** Sliding window [left, right]; null = no window; −1 = unbounded on that side. */
  readonly window: readonly [number, number] | null;
  readonly backend: BackendChoice;
  /** Seed of the inputs, the masks and the dropout mask. */
  readonly seed: number;
  /** Timed repetitions after one untimed warm-up (the median is shown). */
  readonly repeats: number;
  /** Which batch and head the heatmap shows. */
  readonly heatmapBatch: number;
  readonly heatmapHead: number;
}

export const DEFAULT_PLAYGROUND: PlaygroundConfig = {
  batch: 2,
  heads: 4,
  queryLength: 128,
  keyLength: 128,
  headDim: 64,
  dtype: 'f32',
  mask: 'key-padding',
  causal: true,
  alignment: 'top-left',
  dropoutP: 0,
  window: null,
  backend: 'auto',
  seed: 1234,
  repeats: 5,
  heatmapBatch: 0,
  heatmapHead: 0,
};

/** Bounds of the form fields (the float64 reference runs in JavaScript, so it has its own, lower, budget). */
export const PLAYGROUND_LIMITS = {
  batch: [1, 16],
  heads: [1, 32],
  queryLength: [1, 4096],
  keyLength: [1, 4096],
  headDim: [1, 256],
  repeats: [1, 50],
} as const;

/** Multiply-adds of one attention call: B·H·L·S·D (QKᵀ) — what the float64 reference must do twice. */
export const attentionWork = (config: PlaygroundConfig): number =>
  config.batch * config.heads * config.queryLength * config.keyLength * config.headDim;

/** The float64 reference (two passes: oracle and same-precision) runs when the work is at most this. */
export const REFERENCE_WORK_BUDGET = 2 ** 26;

/** On the CPU device (no WebGPU) every size is computed in JavaScript: small problems only. */
export const CPU_WORK_BUDGET = 2 ** 22;

/** q, k and v are drawn in JavaScript first: at most this many elements in the largest of them. */
export const INPUT_ELEMENT_BUDGET = 2 ** 25;

/** Elements of the largest input: B·H·max(L, S)·D. */
export const largestInput = (config: PlaygroundConfig): number =>
  config.batch * config.heads * Math.max(config.queryLength, config.keyLength) * config.headDim;

/** The heatmap draws one [L, S] matrix; beyond this many cells it is skipped. */
export const HEATMAP_CELL_BUDGET = 512 * 512;
