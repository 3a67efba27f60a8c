import {
  DTypeError,
  DeviceMismatchError,
  ShapeError,
  Tensor,
  describeAttention,
  emptyTensor,
  type AttentionLayout,
  type AttentionOptions,
  type AttentionProblem,
  type Device,
  type Storage,
} from '@webattn/tensor';
import { checkFlash } from './check-flash';
import { recordFlashBackward } from './flash-backward';
import { assertRunnable, recordFlashForward, type FlashForwardBuffers } from './flash-forward';
import type { FlashCaps } from './flash-tiles';
import { deviceRecorder, type KernelRecorder } from './recorder';
import { storedScoresBudget } from './stored-scores';

export function requireGpu(device: Device, what: string): void {
  if (!device.isGpu) {
    throw new DeviceMismatchError(`${what} runs on a WebGPU device, but the tensors are on the CPU; move them with .to(gpuDevice) or use the reference backend`);
  }
}

/** The attention layout of a tensor view: [B, H, N, D], or [total, H, D] for packed varlen. */
export function layoutOfTensor(t: Tensor, varlen: boolean): AttentionLayout {
  const s = t.strides;
  if (varlen) return { batch: 0, sequence: s[0]!, head: s[1]!, dim: s[2]!, offset: t.offset };
  return { batch: s[0]!, head: s[1]!, sequence: s[2]!, dim: s[3]!, offset: t.offset };
}

/** Storages of logsumexp tensors made by flashAttention: they hold the rounding residuals after the values. */
const RESIDUAL_STORAGES = new WeakSet<Storage>();

/** A contiguous f32 logsumexp tensor whose storage has room for the residuals (see FlashForwardBuffers). */
function logsumexpWithResidual(device: Device, shape: readonly number[]): Tensor {
  const count = shape.reduce((a, b) => a * b, 1);
  const whole = emptyTensor(device, 'f32', [2 * count], 'flash logsumexp');
  const view = new Tensor(whole.storage.retain(), shape);
  whole.dispose();
  RESIDUAL_STORAGES.add(view.storage);
  return view;
}

function u32Buffer(recorder: KernelRecorder, values: readonly number[] | Uint32Array, label: string): GPUBuffer {
  const data = Uint32Array.from(values);
  const buffer = recorder.temporary(Math.max(16, data.byteLength), GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST, label);
  recorder.gpu.queue.writeBuffer(buffer, 0, data);
  return buffer;
}

/**
 * The optional input buffers of a problem (mask view's buffer, uploaded key lengths and sequence offsets, plus
 * the host offsets, so that packed varlen dispatches can be split over sequences).
 */
export function optionalInputs(
  recorder: KernelRecorder,
  problem: AttentionProblem,
  options: AttentionOptions,
): Pick<FlashForwardBuffers, 'mask' | 'keyLengths' | 'cuSeqlensQ' | 'cuSeqlensK' | 'packedRows'> {
  return {
    ...(problem.mask.kind !== 'none' && options.attnMask ? { mask: options.attnMask.buffer } : {}),
    ...(problem.keyLengths && options.keyLengths ? { keyLengths: u32Buffer(recorder, options.keyLengths, 'flash key lengths') } : {}),
    ...(problem.varlen && options.cuSeqlensQ && options.cuSeqlensK
      ? {
          cuSeqlensQ: u32Buffer(recorder, options.cuSeqlensQ, 'flash cuSeqlensQ'),
          cuSeqlensK: u32Buffer(recorder, options.cuSeqlensK, 'flash cuSeqlensK'),
          packedRows: { cuSeqlensQ: options.cuSeqlensQ, cuSeqlensK: options.cuSeqlensK },
        }
      : {}),
  };
}

/**
 * FlashAttention forward on tensors: q [B, Hq, L, Dqk], k [B, Hkv, S, Dqk], v [B, Hkv, S, Dv] in any strides
 * (packed varlen: [total, H, D]). Returns out (contiguous [B, Hq, L, Dv], or [totalQ, Hq, Dv]) and the f32
 * logsumexp [B, Hq, L] (varlen: L = longest query sequence) that `flashAttentionGrad` needs. Records into the
 * device's shared encoder. Throws describeAttention's typed errors, and InvalidArgumentError listing every
 * `checkFlash` rejection.
 */
export function flashAttention(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  options: AttentionOptions = {},
): { out: Tensor; logsumexp: Tensor } {
  const problem = describeAttention(q, k, v, options);
  const device = q.device;
  requireGpu(device, 'flashAttention');
  assertRunnable(checkFlash(problem, device.caps), 'flashAttention');
  const outShape = problem.varlen
    ? [q.shape[0]!, problem.queryHeads, problem.headDimV]
    : [problem.batch, problem.queryHeads, problem.queryLength, problem.headDimV];
  const out = emptyTensor(device, problem.dtype, outShape, 'flash out');
  const logsumexp = logsumexpWithResidual(device, [problem.batch, problem.queryHeads, problem.queryLength]);
  const recorder = deviceRecorder(device);
  const withOut = { ...problem, layout: { ...problem.layout, out: layoutOfTensor(out, problem.varlen) } };
  recordFlashForward(recorder, device.caps, withOut, {
    q: q.buffer,
    k: k.buffer,
    v: v.buffer,
    out: out.buffer,
    logsumexp: logsumexp.buffer,
    logsumexpResidual: true,
    ...optionalInputs(recorder, problem, options),
  });
  recorder.finish();
  return { out, logsumexp };
}

/**
 * FlashAttention-2 backward on tensors: the gradients of sum(out ∘ gradOut) with respect to q, k and v, from the
 * forward's out and logsumexp (pass the same options, dropout seed and offset included). Returns contiguous
 * dq, dk, dv shaped like q, k, v (GQA: dk, dv have Hkv heads, summed over their query heads).
 */
export function flashAttentionGrad(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  out: Tensor,
  logsumexp: Tensor,
  gradOut: Tensor,
  options: AttentionOptions = {},
): { dq: Tensor; dk: Tensor; dv: Tensor } {
  requireGpu(q.device, 'flashAttentionGrad');
  return flashGradients({ q, k, v, out, logsumexp, gradOut }, options, q.device.caps);
}

/**
 * flashAttentionGrad recorded with these caps (the tuner's: `storedScoresBytes` 0 times the dQ kernel that
 * recomputes the scores; where they leave it unset, the device's setStoredScoresBudget applies).
 */
export function flashGradients(
  tensors: { readonly [name in 'q' | 'k' | 'v' | 'out' | 'logsumexp' | 'gradOut']: Tensor },
  options: AttentionOptions,
  caps: FlashCaps,
): { dq: Tensor; dk: Tensor; dv: Tensor } {
  const { q, k, v, out, logsumexp, gradOut } = tensors;
  const problem = describeAttention(q, k, v, { ...options, requiresGrad: true });
  const device = q.device;
  requireGpu(device, 'flashAttentionGrad');
  assertRunnable(checkFlash(problem, device.caps), 'flashAttentionGrad');
  const expectedOut = problem.varlen
    ? [q.shape[0]!, problem.queryHeads, problem.headDimV]
    : [problem.batch, problem.queryHeads, problem.queryLength, problem.headDimV];
  for (const [name, t] of [
    ['out', out],
    ['gradOut', gradOut],
  ] as const) {
    if (t.shape.length !== expectedOut.length || t.shape.some((size, axis) => size !== expectedOut[axis])) {
      throw new ShapeError(`${name} has shape [${t.shape.join(', ')}], need [${expectedOut.join(', ')}] (the forward's out)`);
    }
    if (t.dtype !== problem.dtype) throw new DTypeError(`${name} has dtype ${t.dtype}, need ${problem.dtype} like q`);
  }
  const lseShape = [problem.batch, problem.queryHeads, problem.queryLength];
  if (logsumexp.dtype !== 'f32' || !logsumexp.isContiguous() || logsumexp.offset !== 0 || logsumexp.shape.join() !== lseShape.join()) {
    throw new ShapeError(`logsumexp must be the forward's contiguous f32 [${lseShape.join(', ')}], got ${logsumexp.dtype} [${logsumexp.shape.join(', ')}]`);
  }
  const dq = emptyTensor(device, problem.dtype, q.shape, 'flash dq');
  const dk = emptyTensor(device, problem.dtype, k.shape, 'flash dk');
  const dv = emptyTensor(device, problem.dtype, v.shape, 'flash dv');
  const varlen = problem.varlen;
  const withOut = { ...problem, layout: { ...problem.layout, out: layoutOfTensor(out, varlen) } };
  const recorder = deviceRecorder(device);
  const storedScoresBytes = caps.storedScoresBytes ?? storedScoresBudget(device.gpu);
  recordFlashBackward(recorder, { ...caps, storedScoresBytes }, withOut, {
    q: q.buffer,
    k: k.buffer,
    v: v.buffer,
    out: out.buffer,
    logsumexp: logsumexp.buffer,
    logsumexpResidual: RESIDUAL_STORAGES.has(logsumexp.storage),
    gradOut: gradOut.buffer,
    dq: dq.buffer,
    dk: dk.buffer,
    dv: dv.buffer,
    layouts: {
      gradOut: layoutOfTensor(gradOut, varlen),
      dq: layoutOfTensor(dq, varlen),
      dk: layoutOfTensor(dk, varlen),
      dv: layoutOfTensor(dv, varlen),
    },
    ...optionalInputs(recorder, problem, options),
  });
  recorder.finish();
  return { dq, dk, dv };
}
