/** The seed mini-test's shape, attention variants and option sets (`pnpm bench seed` and the demo app). */

export interface SeedConfig {
  readonly batch: number;
  readonly seq: number;
  readonly embed: number;
  readonly heads: number;
  /** Timed training steps per (variant, option set); one untimed warm-up step runs first. */
  readonly steps: number;
  /** Seed of the weights, inputs, masks and dropout (every variant starts from the same weights). */
  readonly seed: number;
  /** Drain the GPU after each phase and report forward / backward / optimizer / readback times. */
  readonly profile?: boolean;
}

/** The seed's size: batch 32, sequence 500, embedding 128 over 8 heads (head dim 16), 100 steps. */
export const SEED_SIZE: SeedConfig = { batch: 32, seq: 500, embed: 128, heads: 8, steps: 100, seed: 1234 };

/** A reduced size for software adapters and the demo's default: finishes in seconds on SwiftShader or lavapipe. */
export const REDUCED_SIZE: SeedConfig = { batch: 4, seq: 64, embed: 32, heads: 4, steps: 20, seed: 1234 };

export const VARIANTS = ['naive', 'mha', 'sdpa', 'flash'] as const;
export type VariantName = (typeof VARIANTS)[number];

export const VARIANT_LABELS: Record<VariantName, string> = {
  naive: 'naive MHA (matmul·softmax·matmul)',
  mha: 'MultiheadAttention (dispatcher)',
  sdpa: 'custom MHA on scaledDotProductAttention',
  flash: 'custom MHA, flash forced',
};

export const OPTION_SETS = ['none', 'key-padding', 'bool-mask', 'dropout', 'mask+dropout', 'causal'] as const;
export type OptionSetName = (typeof OPTION_SETS)[number];

/** What one option set turns on. */
export interface OptionSet {
  readonly keyPadding: boolean;
  readonly boolMask: boolean;
  readonly dropout: number;
  readonly causal: boolean;
}

export const OPTION_SET_DEFINITIONS: Record<OptionSetName, OptionSet> = {
  none: { keyPadding: false, boolMask: false, dropout: 0, causal: false },
  'key-padding': { keyPadding: true, boolMask: false, dropout: 0, causal: false },
  'bool-mask': { keyPadding: false, boolMask: true, dropout: 0, causal: false },
  dropout: { keyPadding: false, boolMask: false, dropout: 0.1, causal: false },
  'mask+dropout': { keyPadding: true, boolMask: false, dropout: 0.1, causal: false },
  causal: { keyPadding: false, boolMask: false, dropout: 0, causal: true },
};
