/**
 * The tensor-level attention contract every backend shares: `AttentionOptions` (PyTorch's SDPA arguments plus
 * FlashAttention's extras) and `describeAttention`, which validates a call and turns it into the
 * `AttentionProblem` that backend checks and kernels read. Every backend calls `describeAttention` first, so bad
 * input gets the same typed error, naming the shapes and the fix, whichever backend would have run.
 *
 * Shapes: q [B, Hq, L, Dqk], k [B, Hkv, S, Dqk], v [B, Hkv, S, Dv] (any strides). Packed variable-length
 * batches (cuSeqlensQ/cuSeqlensK): q [totalQ, Hq, Dqk], k [totalK, Hkv, Dqk], v [totalK, Hkv, Dv].
 *
 * Key lengths are a key-padding fast path: the result equals a bool mask that hides keys j ≥ keyLengths[b], so
 * causal and window alignment still use the tensor's S. Packed sequences align each sequence on its own lengths.
 */
import type { AttentionLayout, AttentionMask, AttentionProblem, CausalAlignment } from './attention-problem';
import { bhndLayout } from './attention-problem';
import { DTypeError, DeviceMismatchError, InvalidArgumentError, ShapeError } from './errors';
import { formatShape } from './shape';
import type { Tensor } from './tensor';

export interface AttentionOptions {
  /** bool (true = may attend) or f32/f16 additive (−∞ removes); broadcastable to [B, Hq, L, S]. */
  readonly attnMask?: Tensor;
  /** Dropout probability in [0, 1); default 0. */
  readonly dropoutP?: number;
  /** Philox seed of the dropout mask (integer in [0, 2^53)). Pass the same seed to backward. Default: random. */
  readonly dropoutSeed?: number;
  /** Philox counter offset (u32), e.g. a step counter; default 0. */
  readonly dropoutOffset?: number;
  readonly isCausal?: boolean;
  /** 'top-left' (PyTorch's is_causal, default) or 'bottom-right' (FlashAttention's). Also aligns `window`. */
  readonly causalAlignment?: CausalAlignment;
  /** Default 1 / sqrt(Dqk). */
  readonly scale?: number;
  /** Required (as in PyTorch) when Hq ≠ Hkv; Hq must be a multiple of Hkv. */
  readonly enableGqa?: boolean;
  /** Sliding window [left, right] around the aligned diagonal; −1 = unbounded on that side. */
  readonly window?: readonly [number, number];
  /** Scores become softcap · tanh(score / softcap) before the mask is added. */
  readonly softcap?: number;
  /** Per-batch valid key counts: keys j ≥ keyLengths[b] are masked. */
  readonly keyLengths?: readonly number[] | Uint32Array;
  /** Packed varlen: sequence b has query rows cuSeqlensQ[b] .. cuSeqlensQ[b+1] − 1 (length B + 1, from 0). */
  readonly cuSeqlensQ?: readonly number[] | Uint32Array;
  readonly cuSeqlensK?: readonly number[] | Uint32Array;
  /** Also return the attention weights [B, Hq, L, S] (after dropout). */
  readonly needWeights?: boolean;
  /** Backward will be called (forward keeps the logsumexp). */
  readonly requiresGrad?: boolean;
}

const describeTensor = (name: string, t: Tensor): string => `${name} ${formatShape(t.shape)}`;

function layoutOf(t: Tensor, varlen: boolean): AttentionLayout {
  const s = t.strides;
  if (varlen) return { batch: 0, sequence: s[0]!, head: s[1]!, dim: s[2]!, offset: t.offset };
  return { batch: s[0]!, head: s[1]!, sequence: s[2]!, dim: s[3]!, offset: t.offset };
}

function checkSequenceOffsets(
  name: string,
  values: readonly number[] | Uint32Array,
  total: number,
  tensorName: string,
): number {
  const list = Array.from(values);
  if (list.length < 2) {
    throw new ShapeError(`${name} needs B + 1 ≥ 2 entries (0, end of sequence 0, ...), got ${list.length}`);
  }
  if (list[0] !== 0) throw new InvalidArgumentError(`${name} must start at 0, got ${list[0]}`);
  let longest = 0;
  for (let b = 0; b + 1 < list.length; b++) {
    const length = list[b + 1]! - list[b]!;
    if (!Number.isInteger(list[b + 1]) || length < 0) {
      throw new InvalidArgumentError(
        `${name} must be non-decreasing integers, got ${list[b]} then ${list[b + 1]} at index ${b}`,
      );
    }
    longest = Math.max(longest, length);
  }
  if (list[list.length - 1] !== total) {
    throw new ShapeError(
      `${name} ends at ${list[list.length - 1]} but ${tensorName} has ${total} rows; the last entry must be the total`,
    );
  }
  if (longest === 0) throw new ShapeError(`${name} describes only empty sequences; attention needs L, S ≥ 1`);
  return longest;
}

/**
 * Validates an attention call and describes it. Throws ShapeError (ranks, sizes, broadcasts), DTypeError,
 * DeviceMismatchError, DisposedTensorError, DeviceLostError or InvalidArgumentError, naming the values and the fix.
 */
export function describeAttention(q: Tensor, k: Tensor, v: Tensor, options: AttentionOptions = {}): AttentionProblem {
  const named: [string, Tensor][] = [
    ['q', q],
    ['k', k],
    ['v', v],
  ];
  if (options.attnMask) named.push(['attnMask', options.attnMask]);
  for (const [name, t] of named) t.assertUsable(name);
  for (const [name, t] of named) {
    if (t.device !== q.device) {
      throw new DeviceMismatchError(
        `${name} is on ${t.device.kind} (${t.device.info.adapter}) but q is on ${q.device.kind} (${q.device.info.adapter}); move them to one device with .to(device)`,
      );
    }
  }
  for (const [name, t] of named.slice(0, 3)) {
    if (t.dtype !== 'f32' && t.dtype !== 'f16') {
      throw new DTypeError(`${name} has dtype ${t.dtype}; attention needs f32 or f16 q, k and v`);
    }
  }
  if (k.dtype !== q.dtype || v.dtype !== q.dtype) {
    throw new DTypeError(
      `q, k and v must share a dtype, got q ${q.dtype}, k ${k.dtype}, v ${v.dtype}; convert them to one dtype`,
    );
  }
  const dtype = q.dtype as 'f32' | 'f16';
  if (dtype === 'f16' && q.device.isGpu && !q.device.caps.shaderF16) {
    throw new DTypeError(
      `f16 attention needs the shader-f16 feature, which ${q.device.info.adapter} lacks; use f32 tensors`,
    );
  }

  const varlen = options.cuSeqlensQ !== undefined || options.cuSeqlensK !== undefined;
  const rank = varlen ? 3 : 4;
  const expected = varlen ? '[total, heads, dim]' : '[batch, heads, length, dim]';
  for (const [name, t] of named.slice(0, 3)) {
    if (t.rank !== rank) {
      throw new ShapeError(
        `${describeTensor(name, t)} has rank ${t.rank}; ${varlen ? 'packed varlen (cuSeqlens given) needs' : 'attention needs'} rank ${rank} ${expected}${varlen ? '' : ' (add a batch or head dim with unsqueeze)'}`,
      );
    }
  }
  const headAxis = 1;
  const dimAxis = rank - 1;
  const queryHeads = q.shape[headAxis]!;
  const kvHeads = k.shape[headAxis]!;
  const headDimQk = q.shape[dimAxis]!;
  const headDimV = v.shape[dimAxis]!;
  const shapes = `q ${formatShape(q.shape)}, k ${formatShape(k.shape)}, v ${formatShape(v.shape)}`;

  let batch: number;
  let queryLength: number;
  let keyLength: number;
  if (varlen) {
    if (!options.cuSeqlensQ || !options.cuSeqlensK) {
      throw new InvalidArgumentError('packed varlen needs both cuSeqlensQ and cuSeqlensK');
    }
    if (options.attnMask) {
      throw new InvalidArgumentError(
        'attnMask cannot be combined with packed varlen (cuSeqlensQ/cuSeqlensK); use causal, window or pad the batch',
      );
    }
    if (options.keyLengths) {
      throw new InvalidArgumentError('keyLengths cannot be combined with cuSeqlensK; shorten the sequences in cuSeqlensK');
    }
    if (options.cuSeqlensQ.length !== options.cuSeqlensK.length) {
      throw new ShapeError(
        `cuSeqlensQ has ${options.cuSeqlensQ.length} entries but cuSeqlensK has ${options.cuSeqlensK.length}; both need B + 1`,
      );
    }
    if (k.shape[0] !== v.shape[0]) throw new ShapeError(`k and v need the same total rows: ${shapes}`);
    batch = options.cuSeqlensQ.length - 1;
    queryLength = checkSequenceOffsets('cuSeqlensQ', options.cuSeqlensQ, q.shape[0]!, 'q');
    keyLength = checkSequenceOffsets('cuSeqlensK', options.cuSeqlensK, k.shape[0]!, 'k');
  } else {
    batch = q.shape[0]!;
    queryLength = q.shape[2]!;
    keyLength = k.shape[2]!;
    if (k.shape[0] !== batch || v.shape[0] !== batch) {
      throw new ShapeError(`q, k and v need the same batch size B (dim 0): ${shapes}`);
    }
    if (v.shape[2] !== keyLength) {
      throw new ShapeError(`k and v need the same key length S (dim 2): ${shapes}`);
    }
    if (batch === 0) throw new ShapeError(`batch size is 0 (${shapes}); attention needs B ≥ 1`);
    if (queryLength === 0 || keyLength === 0) {
      throw new ShapeError(`attention needs L ≥ 1 and S ≥ 1, got L = ${queryLength}, S = ${keyLength} (${shapes})`);
    }
  }
  if (v.shape[headAxis] !== kvHeads) {
    throw new ShapeError(`k and v need the same number of heads (dim ${headAxis}): ${shapes}`);
  }
  if (k.shape[dimAxis] !== headDimQk) {
    throw new ShapeError(`q and k need the same head dim D (last dim): ${shapes}`);
  }
  if (headDimQk === 0 || headDimV === 0 || queryHeads === 0 || kvHeads === 0) {
    throw new ShapeError(`heads and head dims must be ≥ 1: ${shapes}`);
  }
  if (queryHeads % kvHeads !== 0) {
    throw new ShapeError(
      `query heads Hq = ${queryHeads} is not a multiple of kv heads Hkv = ${kvHeads} (${shapes}); GQA needs Hq = n · Hkv`,
    );
  }
  if (queryHeads !== kvHeads && !options.enableGqa) {
    throw new ShapeError(
      `query heads Hq = ${queryHeads} differ from kv heads Hkv = ${kvHeads} (${shapes}); pass enableGqa: true for grouped-query attention`,
    );
  }

  const mask = describeMask(options.attnMask, [batch, queryHeads, queryLength, keyLength]);

  if (options.keyLengths) {
    const lengths = Array.from(options.keyLengths);
    if (lengths.length !== batch) {
      throw new ShapeError(`keyLengths has ${lengths.length} entries, need one per batch (B = ${batch})`);
    }
    lengths.forEach((length, b) => {
      if (!Number.isInteger(length) || length < 0 || length > keyLength) {
        throw new InvalidArgumentError(`keyLengths[${b}] = ${length} must be an integer in [0, S = ${keyLength}]`);
      }
    });
  }

  const scale = options.scale ?? 1 / Math.sqrt(headDimQk);
  if (!Number.isFinite(scale)) throw new InvalidArgumentError(`scale must be a finite number, got ${scale}`);
  const softcap = options.softcap ?? null;
  if (softcap !== null && !(softcap > 0 && Number.isFinite(softcap))) {
    throw new InvalidArgumentError(`softcap must be a positive finite number (or omitted), got ${softcap}`);
  }
  let window: AttentionProblem['window'] = null;
  if (options.window) {
    const [left, right] = options.window;
    for (const [side, value] of [
      ['left', left],
      ['right', right],
    ] as const) {
      if (!Number.isInteger(value) || value < -1) {
        throw new InvalidArgumentError(`window ${side} must be an integer ≥ 0, or −1 for unbounded; got ${value}`);
      }
    }
    window = { left, right };
  }
  const causalAlignment = options.causalAlignment ?? 'top-left';
  if (causalAlignment !== 'top-left' && causalAlignment !== 'bottom-right') {
    throw new InvalidArgumentError(`causalAlignment must be 'top-left' or 'bottom-right', got ${String(causalAlignment)}`);
  }

  const p = options.dropoutP ?? 0;
  if (!(p >= 0 && p < 1)) {
    throw new InvalidArgumentError(`dropoutP must be in [0, 1), got ${p}; p = 1 would drop every weight`);
  }
  let dropout: AttentionProblem['dropout'] = null;
  if (p > 0) {
    const seed = options.dropoutSeed ?? Math.floor(Math.random() * 2 ** 31);
    const offset = options.dropoutOffset ?? 0;
    if (!Number.isSafeInteger(seed) || seed < 0) {
      throw new InvalidArgumentError(`dropoutSeed must be an integer in [0, 2^53), got ${seed}`);
    }
    if (!Number.isInteger(offset) || offset < 0 || offset > 0xffffffff) {
      throw new InvalidArgumentError(`dropoutOffset must be a u32 integer, got ${offset}`);
    }
    dropout = { p, seed, offset };
  }

  const outLayout = varlen
    ? { batch: 0, sequence: queryHeads * headDimV, head: headDimV, dim: 1, offset: 0 }
    : bhndLayout(queryHeads, queryLength, headDimV);
  return {
    batch,
    queryHeads,
    kvHeads,
    queryLength,
    keyLength,
    headDimQk,
    headDimV,
    dtype,
    scale,
    layout: { q: layoutOf(q, varlen), k: layoutOf(k, varlen), v: layoutOf(v, varlen), out: outLayout },
    mask,
    keyLengths: options.keyLengths !== undefined,
    varlen,
    causal: options.isCausal ?? false,
    window,
    causalAlignment,
    softcap,
    dropout,
    needWeights: options.needWeights ?? false,
    requiresGrad: options.requiresGrad ?? false,
  };
}

/** The mask's strides over [B, H, L, S] by PyTorch's broadcasting rules (stride 0 where it broadcasts). */
function describeMask(mask: Tensor | undefined, target: readonly [number, number, number, number]): AttentionMask {
  if (!mask) return { kind: 'none' };
  if (mask.dtype !== 'bool' && mask.dtype !== 'f32' && mask.dtype !== 'f16') {
    throw new DTypeError(`attnMask has dtype ${String(mask.dtype)}; use bool (true = may attend) or f32/f16 (additive)`);
  }
  const fix = `attnMask ${formatShape(mask.shape)} cannot broadcast to [B, Hq, L, S] = ${formatShape(target)}; each of its trailing dims must equal the target's or be 1`;
  if (mask.rank > 4 || mask.rank === 0) throw new ShapeError(fix);
  const lead = 4 - mask.rank;
  const strides = target.map((size, axis) => {
    if (axis < lead) return 0;
    const own = mask.shape[axis - lead]!;
    if (own !== size && own !== 1) throw new ShapeError(fix);
    return own === 1 ? 0 : mask.strides[axis - lead]!;
  });
  return {
    kind: mask.dtype === 'bool' ? 'bool' : 'additive',
    dtype: mask.dtype,
    strides: { batch: strides[0]!, head: strides[1]!, row: strides[2]!, column: strides[3]! },
    offset: mask.offset,
  };
}
