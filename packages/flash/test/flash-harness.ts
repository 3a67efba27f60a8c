import {
  roundToHalf,
  tensor,
  type AttentionOptions,
  type Device,
  type Tensor,
} from '@webattn/tensor';
import { freshSeed, randomValues } from '@webattn/tensor/testing';
import { compareAttention } from '@webattn/reference/testing';
import { attentionReference, attentionReferenceBackward, type HostTensor } from './oracle';

/** A test case: sizes, dtype, memory layout of q/k/v and the attention options (mask given as host data). */
export interface FlashCase {
  readonly batch: number;
  readonly queryHeads: number;
  readonly kvHeads?: number;
  readonly queryLength: number;
  readonly keyLength: number;
  readonly headDimQk: number;
  readonly headDimV?: number;
  readonly dtype?: 'f32' | 'f16';
  /** 'bhld' (contiguous [B, H, L, D]) or 'blhd' ([B, L, H, D] memory seen through a permuted view). */
  readonly layout?: 'bhld' | 'blhd';
  /** Host mask: shape broadcastable to [B, Hq, L, S]; bool as 0/1 bytes. */
  readonly mask?: { readonly shape: readonly number[]; readonly dtype: 'bool' | 'f32' | 'f16'; readonly data: ArrayLike<number> };
  readonly options?: Omit<AttentionOptions, 'attnMask'>;
}

export interface Prepared {
  readonly seed: number;
  readonly hostQ: HostTensor;
  readonly hostK: HostTensor;
  readonly hostV: HostTensor;
  readonly hostMask?: HostTensor;
  readonly q: Tensor;
  readonly k: Tensor;
  readonly v: Tensor;
  readonly attnMask?: Tensor;
  readonly options: AttentionOptions;
  readonly referenceOptions: Omit<AttentionOptions, 'attnMask'> & { attnMask?: HostTensor };
}

function rounded(values: Float32Array, dtype: 'f32' | 'f16'): Float32Array {
  return dtype === 'f16' ? values.map(roundToHalf) : values;
}

function makeTensor(device: Device, seed: number, dims: readonly number[], layout: 'bhld' | 'blhd', dtype: 'f32' | 'f16', varlen: boolean): { host: HostTensor; gpu: Tensor } {
  const count = dims.reduce((a, b) => a * b, 1);
  const values = rounded(randomValues(count, seed, -1.5, 1.5), dtype);
  if (varlen || layout === 'bhld') {
    return { host: { data: values, shape: dims }, gpu: tensor(device, values, dims, { dtype }) };
  }
  const [b, h, n, d] = dims as [number, number, number, number];
  const memory = tensor(device, values, [b, n, h, d], { dtype });
  const host: HostTensor = { data: values, shape: dims, strides: [n * h * d, d, h * d, 1] };
  return { host, gpu: memory.permute([0, 2, 1, 3]) };
}

export function prepare(device: Device, spec: FlashCase, seed = freshSeed()): Prepared {
  const dtype = spec.dtype ?? 'f32';
  const layout = spec.layout ?? 'bhld';
  const kvHeads = spec.kvHeads ?? spec.queryHeads;
  const headDimV = spec.headDimV ?? spec.headDimQk;
  const options = spec.options ?? {};
  const cuQ = options.cuSeqlensQ;
  const cuK = options.cuSeqlensK;
  const varlen = cuQ !== undefined;
  const qDims = varlen ? [cuQ![cuQ!.length - 1]!, spec.queryHeads, spec.headDimQk] : [spec.batch, spec.queryHeads, spec.queryLength, spec.headDimQk];
  const kDims = varlen ? [cuK![cuK!.length - 1]!, kvHeads, spec.headDimQk] : [spec.batch, kvHeads, spec.keyLength, spec.headDimQk];
  const vDims = varlen ? [cuK![cuK!.length - 1]!, kvHeads, headDimV] : [spec.batch, kvHeads, spec.keyLength, headDimV];
  const q = makeTensor(device, seed, qDims, layout, dtype, varlen);
  const k = makeTensor(device, seed + 1, kDims, layout, dtype, varlen);
  const v = makeTensor(device, seed + 2, vDims, layout, dtype, varlen);
  let hostMask: HostTensor | undefined;
  let attnMask: Tensor | undefined;
  if (spec.mask) {
    const { shape, dtype: maskDtype, data } = spec.mask;
    const values = maskDtype === 'bool' ? Uint8Array.from(data) : rounded(Float32Array.from(data), maskDtype);
    hostMask = { data: values, shape, dtype: maskDtype === 'bool' ? 'bool' : 'f32' };
    attnMask = tensor(device, values, shape, { dtype: maskDtype });
  }
  return {
    seed,
    hostQ: q.host,
    hostK: k.host,
    hostV: v.host,
    q: q.gpu,
    k: k.gpu,
    v: v.gpu,
    ...(hostMask ? { hostMask } : {}),
    ...(attnMask ? { attnMask } : {}),
    options: { ...options, ...(attnMask ? { attnMask } : {}), enableGqa: kvHeads !== spec.queryHeads },
    referenceOptions: { ...options, ...(hostMask ? { attnMask: hostMask } : {}), enableGqa: kvHeads !== spec.queryHeads },
  };
}

export interface Comparison {
  readonly name: string;
  readonly error: number;
  readonly allowed: number;
  readonly index: number;
}

/** The shared tolerance rule of @webattn/reference/testing (a multiple of the same-precision reference's error). */
export function compare(name: string, actual: ArrayLike<number>, exact: ArrayLike<number>, same: ArrayLike<number>, dtype: 'f32' | 'f16'): Comparison {
  const result = compareAttention(actual, exact, same, dtype);
  return { name, error: result.error, allowed: result.tolerance, index: result.index };
}

export function forwardReferences(prepared: Prepared, dtype: 'f32' | 'f16') {
  const exact = attentionReference(prepared.hostQ, prepared.hostK, prepared.hostV, prepared.referenceOptions);
  const same = attentionReference(prepared.hostQ, prepared.hostK, prepared.hostV, { ...prepared.referenceOptions, precision: dtype });
  return { exact, same };
}

export function backwardReferences(prepared: Prepared, gradOut: HostTensor, dtype: 'f32' | 'f16') {
  const exact = attentionReferenceBackward(prepared.hostQ, prepared.hostK, prepared.hostV, gradOut, prepared.referenceOptions);
  const same = attentionReferenceBackward(prepared.hostQ, prepared.hostK, prepared.hostV, gradOut, { ...prepared.referenceOptions, precision: dtype });
  return { exact, same };
}

export function describeCase(spec: FlashCase, seed: number): string {
  return `${JSON.stringify({ ...spec, mask: spec.mask ? { shape: spec.mask.shape, dtype: spec.mask.dtype } : undefined })} seed=${seed} (replay with WEBATTN_SEED=${seed})`;
}

/**
 * Fills the pool with NaN buffers of these element counts (f32) so the next outputs of similar size are
 * allocated on poisoned memory: a kernel that skips an element cannot pass on zeros.
 */
export async function poisonPool(device: Device, counts: readonly number[]): Promise<void> {
  const { full } = await import('@webattn/tensor');
  for (const count of counts) {
    for (const dtype of ['f32', 'f16'] as const) full(device, [Math.max(1, count)], Number.NaN, { dtype }).dispose();
  }
  device.submit();
}
