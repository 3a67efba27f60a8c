import { tensor, type Device, type Tensor } from '@webattn/tensor';
import type { SeedConfig } from './seed-config';

/**
 * The seed's masks, each in the polarity its consumer expects, built once from the same host pattern:
 * - key padding: batch b keeps its first length[b] keys (lengths drawn in [seq/2, seq]);
 * - bool attention mask: a band, query i sees keys j with |i − j| ≤ seq/8 (no row is ever fully masked).
 * MultiheadAttention takes PyTorch's polarity (true = masked out), scaledDotProductAttention SDPA's
 * (true = may attend), the naive variant additive floats (−∞ = masked).
 */
export interface SeedMasks {
  readonly lengths: readonly number[];
  /** [B, S] bool, true = padding (MultiheadAttention). */
  readonly paddingMasked: Tensor;
  /** [B, 1, 1, S] bool, true = may attend (SDPA). */
  readonly paddingAllowed: Tensor;
  /** [B, 1, 1, S] f32, −∞ on padding (naive). */
  readonly paddingAdditive: Tensor;
  /** [L, S] bool, true = masked out (MultiheadAttention). */
  readonly bandMasked: Tensor;
  /** [1, 1, L, S] bool, true = may attend (SDPA). */
  readonly bandAllowed: Tensor;
  /** [1, 1, L, S] f32, −∞ outside the band (naive). */
  readonly bandAdditive: Tensor;
  /** [1, 1, L, L] f32, −∞ above the diagonal (the naive variant's causal mask). */
  readonly causalAdditive: Tensor;
  dispose(): void;
}

export function buildSeedMasks(device: Device, config: SeedConfig): SeedMasks {
  const { batch: B, seq: L } = config;
  let state = config.seed >>> 0 || 1;
  const random = () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 4294967296;
  };
  const lengths = Array.from({ length: B }, () => Math.ceil(L / 2) + Math.floor(random() * (L - Math.ceil(L / 2) + 1)));
  const padding = new Uint8Array(B * L);
  lengths.forEach((length, b) => padding.fill(1, b * L + length, (b + 1) * L));
  const width = Math.max(1, Math.floor(L / 8));
  const band = new Uint8Array(L * L);
  const causal = new Float32Array(L * L);
  for (let i = 0; i < L; i++) {
    for (let j = 0; j < L; j++) {
      band[i * L + j] = Math.abs(i - j) > width ? 1 : 0;
      causal[i * L + j] = j > i ? Number.NEGATIVE_INFINITY : 0;
    }
  }
  const negate = (mask: Uint8Array) => mask.map((value) => 1 - value);
  const additive = (mask: Uint8Array) => Float32Array.from(mask, (value) => (value ? Number.NEGATIVE_INFINITY : 0));
  const masks = {
    lengths,
    paddingMasked: tensor(device, padding, [B, L], { dtype: 'bool' }),
    paddingAllowed: tensor(device, negate(padding), [B, 1, 1, L], { dtype: 'bool' }),
    paddingAdditive: tensor(device, additive(padding), [B, 1, 1, L]),
    bandMasked: tensor(device, band, [L, L], { dtype: 'bool' }),
    bandAllowed: tensor(device, negate(band), [1, 1, L, L], { dtype: 'bool' }),
    bandAdditive: tensor(device, additive(band), [1, 1, L, L]),
    causalAdditive: tensor(device, causal, [1, 1, L, L]),
  };
  return {
    ...masks,
    dispose() {
      for (const value of Object.values(masks)) if (typeof value === 'object' && 'dispose' in value) value.dispose();
    },
  };
}
