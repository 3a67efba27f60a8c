/**
 * The playground's inputs: q, k, v drawn from a seed (the same values on the CPU and the GPU), and the mask the
 * form asks for, both as tensors on the device and as host arrays for the float64 reference.
 */
import type { HostTensor } from '@webattn/reference';
import { cpuDevice, randn, tensor, type AttentionOptions, type Device, type Tensor } from '@webattn/tensor';
import type { PlaygroundConfig } from './playground-config';

export interface AttentionInputs {
  readonly q: Tensor;
  readonly k: Tensor;
  readonly v: Tensor;
  readonly hostQ: HostTensor;
  readonly hostK: HostTensor;
  readonly hostV: HostTensor;
  /** The mask as the reference reads it, when the mask kind is bool or additive. */
  readonly hostMask: HostTensor | null;
  /** Options of the call (mask tensor, key lengths, causal, window, dropout with an explicit seed). */
  readonly options: AttentionOptions;
  /** Key lengths per batch for the key-padding mask kind. */
  readonly keyLengths: readonly number[] | null;
  dispose(): void;
}

/** A small deterministic generator for the masks (the values themselves come from Philox through randn). */
function lcg(seed: number): () => number {
  let state = seed >>> 0 || 1;
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 4294967296;
  };
}

/** ALiBi slope of head h of H: 2^(−8(h+1)/H), so each head sees a different distance penalty. */
export const alibiSlope = (head: number, heads: number): number => 2 ** ((-8 * (head + 1)) / heads);

function buildMask(config: PlaygroundConfig): { host: HostTensor | null; keyLengths: number[] | null } {
  const { batch: B, heads: H, queryLength: L, keyLength: S } = config;
  const random = lcg(config.seed ^ 0x9e3779b9);
  switch (config.mask) {
    case 'none':
      return { host: null, keyLengths: null };
    case 'key-padding': {
      // Batch b keeps its first length[b] keys; lengths drawn in [⌈S/2⌉, S].
      const low = Math.ceil(S / 2);
      const keyLengths = Array.from({ length: B }, () => low + Math.floor(random() * (S - low + 1)));
      return { host: null, keyLengths };
    }
    case 'bool': {
      // [B, 1, L, S]: each key is visible with probability 3/4 (broadcast over heads).
      const data = new Uint8Array(B * L * S);
      for (let i = 0; i < data.length; i++) data[i] = random() < 0.75 ? 1 : 0;
      return { host: { data, shape: [B, 1, L, S], dtype: 'bool' }, keyLengths: null };
    }
    case 'additive': {
      // [1, H, L, S]: −slope_h · |i − j| (broadcast over the batch).
      const data = new Float32Array(H * L * S);
      for (let h = 0; h < H; h++) {
        const slope = alibiSlope(h, H);
        for (let i = 0; i < L; i++) {
          for (let j = 0; j < S; j++) data[(h * L + i) * S + j] = -slope * Math.abs(i - j);
        }
      }
      return { host: { data, shape: [1, H, L, S], dtype: 'f32' }, keyLengths: null };
    }
  }
}

/** Draws the inputs on the CPU (seeded) and moves them to `device`. */
export async function buildAttentionInputs(device: Device, config: PlaygroundConfig): Promise<AttentionInputs> {
  const { batch: B, heads: H, queryLength: L, keyLength: S, headDim: D, dtype } = config;
  // Drawn on the CPU (the page's own CPU device when there is no GPU, so every tensor shares one device).
  const cpu = device.isGpu ? cpuDevice() : device;
  const hostTensors = [
    randn(cpu, [B, H, L, D], { dtype, seed: config.seed }),
    randn(cpu, [B, H, S, D], { dtype, seed: config.seed + 1 }),
    randn(cpu, [B, H, S, D], { dtype, seed: config.seed + 2 }),
  ] as const;
  const host = hostTensors.map((t) => ({ data: t.data, shape: t.shape, dtype }) satisfies HostTensor);
  const [q, k, v] = device.isGpu ? await Promise.all(hostTensors.map((t) => t.to(device))) : hostTensors;
  const mask = buildMask(config);
  const maskTensor = mask.host ? tensor(device, mask.host.data, mask.host.shape, { dtype: mask.host.dtype as 'bool' | 'f32' }) : null;
  const options: AttentionOptions = {
    ...(maskTensor ? { attnMask: maskTensor } : {}),
    ...(mask.keyLengths ? { keyLengths: mask.keyLengths } : {}),
    ...(config.causal ? { isCausal: true, causalAlignment: config.alignment } : {}),
    ...(config.window ? { window: config.window, causalAlignment: config.alignment } : {}),
    ...(config.dropoutP > 0 ? { dropoutP: config.dropoutP, dropoutSeed: config.seed, dropoutOffset: 0 } : {}),
  };
  return {
    q: q!,
    k: k!,
    v: v!,
    hostQ: host[0]!,
    hostK: host[1]!,
    hostV: host[2]!,
    hostMask: mask.host,
    options,
    keyLengths: mask.keyLengths,
    dispose() {
      for (const t of [q, k, v, maskTensor]) t?.dispose();
      if (device.isGpu) hostTensors.forEach((t) => t.dispose());
    },
  };
}
