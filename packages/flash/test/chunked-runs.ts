/**
 * Runs of the raw-buffer flash API at a lowered binding limit (FlashRecordOptions.maxStorageBindingSize), on
 * NaN-poisoned outputs, and the comparisons the chunking tests share: split against unsplit bits, and against
 * the float64 and same-precision references.
 */
import { gpu } from './test-device';
import { bhndLayout, describeAttention, full, type AttentionProblem, type Tensor } from '@webattn/tensor';
import { expectNoGpuErrors } from '@webattn/tensor/testing';
import { expect } from 'vitest';
import { backwardReferences, compare, describeCase, forwardReferences, prepare, type FlashCase, type Prepared } from './flash-harness';
import { flashAttentionBackward, recordFlashBackward } from '../src/flash-backward';
import type { PackedRows } from '../src/flash-chunks';
import { flashAttentionForward, recordingCaps, type FlashForwardBuffers } from '../src/flash-forward';
import type { GradientLayouts } from '../src/flash-uniforms';
import { rawRecorder } from '../src/recorder';
import { recordSplitKvChunks } from '../src/split-kv-record';
import { poisoningRecorder } from './poisoning-recorder';

export interface Outputs {
  readonly out: Float32Array;
  readonly logsumexp: Float32Array;
  readonly dq?: Float32Array;
  readonly dk?: Float32Array;
  readonly dv?: Float32Array;
}

/** Binding limits of one run: the forward's and the backward's (undefined: the device's). */
export interface Limits {
  readonly forward?: number;
  readonly backward?: number;
  /**
   * The backward's stored-score scratch (FlashRecordOptions.storedScoresBytes). Default 0, dQ recomputing the scores:
   * split runs recompute them, and the chunking tests compare them with whole runs bit for bit.
   */
  readonly storedScores?: number;
  /** Fill the backward's temporary buffers with NaN before it runs (what it reads of them, it must have written). */
  readonly poisonTemporaries?: boolean;
}

/** The same limit for forward and backward. */
export const both = (limit?: number): Limits => ({ forward: limit, backward: limit });

/** NaN-poisoned outputs and gradients (query rows × heads and key rows × kv heads lead their shapes). */
function poisonedTargets(problem: AttentionProblem, queryRows: number[], keyRows: number[], layouts: GradientLayouts) {
  const device = gpu!;
  const { batch, queryHeads, queryLength, headDimQk, headDimV, dtype } = problem;
  const poisoned = (shape: number[], type: 'f32' | 'f16' = dtype) => full(device, shape, Number.NaN, { dtype: type });
  const targets = {
    out: poisoned([...queryRows, headDimV]),
    logsumexp: poisoned([2 * batch * queryHeads * queryLength], 'f32'),
    dq: poisoned([...queryRows, headDimQk]),
    dk: poisoned([...keyRows, headDimQk]),
    dv: poisoned([...keyRows, headDimV]),
  };
  device.submit();
  return {
    ...targets,
    layouts,
    dispose() {
      for (const t of Object.values(targets)) t.dispose();
      device.submit();
    },
  };
}

type Targets = ReturnType<typeof poisonedTargets>;

/** What the raw runs read of a prepared case: its input tensors and options. */
export type RawInputs = Pick<Prepared, 'q' | 'k' | 'v' | 'attnMask' | 'options'>;

/** The forward's buffers: the prepared inputs and the poisoned out and logsumexp (residual: 2·B·Hq·L floats). */
function inputBuffers(prepared: RawInputs, targets: Targets, residual: boolean) {
  return {
    q: prepared.q.buffer,
    k: prepared.k.buffer,
    v: prepared.v.buffer,
    out: targets.out.buffer,
    logsumexp: targets.logsumexp.buffer,
    logsumexpResidual: residual,
  };
}

const options = (limit?: number) => (limit === undefined ? {} : { maxStorageBindingSize: limit });

/** Records the raw forward and (with gradOut) backward under `limits`, then reads the targets. */
async function recordAndRead(problem: AttentionProblem, buffers: FlashForwardBuffers, targets: Targets, gradOut: Tensor | null, limits: Limits): Promise<Outputs> {
  const device = gpu!;
  await expectNoGpuErrors(device, () => {
    flashAttentionForward(device.gpu, problem, buffers, options(limits.forward));
    if (gradOut) {
      const gradients = { gradOut: gradOut.buffer, dq: targets.dq.buffer, dk: targets.dk.buffer, dv: targets.dv.buffer, layouts: targets.layouts };
      const recordOptions = { ...options(limits.backward), storedScoresBytes: limits.storedScores ?? 0 };
      if (limits.poisonTemporaries) {
        const encoder = device.gpu.createCommandEncoder();
        const recorder = poisoningRecorder(device.gpu, encoder, (bytes) => new Float32Array(bytes / 4).fill(Number.NaN));
        recordFlashBackward(recorder, recordingCaps(device.gpu, recordOptions), problem, { ...buffers, ...gradients });
        device.gpu.queue.submit([encoder.finish()]);
        recorder.finish();
      } else {
        flashAttentionBackward(device.gpu, problem, { ...buffers, ...gradients }, recordOptions);
      }
    }
  });
  const rows = problem.batch * problem.queryHeads * problem.queryLength;
  const read = async (t: Tensor) => (await t.toArray()) as Float32Array;
  return {
    out: await read(targets.out),
    logsumexp: (await read(targets.logsumexp)).slice(0, rows),
    ...(gradOut ? { dq: await read(targets.dq), dk: await read(targets.dk), dv: await read(targets.dv) } : {}),
  };
}

const contiguousLayouts = (problem: AttentionProblem): GradientLayouts => {
  const { queryHeads, kvHeads, queryLength, keyLength, headDimQk, headDimV } = problem;
  return {
    gradOut: bhndLayout(queryHeads, queryLength, headDimV),
    dq: bhndLayout(queryHeads, queryLength, headDimQk),
    dk: bhndLayout(kvHeads, keyLength, headDimQk),
    dv: bhndLayout(kvHeads, keyLength, headDimV),
  };
};

/**
 * Runs the raw-buffer forward (and backward) under `limits` on NaN-poisoned outputs (out and gradients
 * contiguous); the logsumexp holds the rounding residuals unless `residual` is false.
 */
export async function runRaw(prepared: RawInputs, problem: AttentionProblem, gradOut: Tensor | null, limits: Limits = {}, residual = true): Promise<Outputs> {
  const { batch, queryHeads, kvHeads, queryLength, keyLength } = problem;
  const targets = poisonedTargets(problem, [batch, queryHeads, queryLength], [batch, kvHeads, keyLength], contiguousLayouts(problem));
  const withOut = { ...problem, layout: { ...problem.layout, out: targets.layouts.gradOut } };
  const buffers = {
    ...inputBuffers(prepared, targets, residual),
    ...(prepared.attnMask ? { mask: prepared.attnMask.buffer } : {}),
    ...(problem.keyLengths ? { keyLengths: u32Buffer(prepared.options.keyLengths!) } : {}),
  };
  try {
    return await recordAndRead(withOut, buffers, targets, gradOut, limits);
  } finally {
    targets.dispose();
    buffers.keyLengths?.destroy();
  }
}

/**
 * The split-KV recording (split-kv-record.ts) of the problem's forward under `limit`, on poisoned out and
 * logsumexp (with residual): the forward flash falls back to when the keys of one kv head exceed a binding.
 */
export async function runSplitKv(prepared: Prepared, problem: AttentionProblem, limit?: number): Promise<Outputs> {
  const device = gpu!;
  const { batch, queryHeads, kvHeads, queryLength, keyLength } = problem;
  const targets = poisonedTargets(problem, [batch, queryHeads, queryLength], [batch, kvHeads, keyLength], contiguousLayouts(problem));
  const withOut = { ...problem, layout: { ...problem.layout, out: targets.layouts.gradOut } };
  const keyLengths = problem.keyLengths ? u32Buffer(prepared.options.keyLengths!) : undefined;
  const optional: [number, GPUBuffer][] = keyLengths ? [[2, keyLengths]] : [];
  const buffers = { ...inputBuffers(prepared, targets, true), ...(prepared.attnMask ? { mask: prepared.attnMask.buffer } : {}) };
  try {
    await expectNoGpuErrors(device, () => {
      const encoder = device.gpu.createCommandEncoder();
      const recorder = rawRecorder(device.gpu, encoder);
      recordSplitKvChunks(recorder, recordingCaps(device.gpu, options(limit)), withOut, buffers, optional, 'test');
      device.gpu.queue.submit([encoder.finish()]);
      recorder.finish();
    });
    const rows = batch * queryHeads * queryLength;
    return { out: (await targets.out.toArray()) as Float32Array, logsumexp: ((await targets.logsumexp.toArray()) as Float32Array).slice(0, rows) };
  } finally {
    targets.dispose();
    keyLengths?.destroy();
  }
}

/** A u32 storage buffer holding `values` (the GPU copy of cu_seqlens or key lengths). */
export function u32Buffer(values: ArrayLike<number>): GPUBuffer {
  const buffer = gpu!.gpu.createBuffer({ size: Math.max(16, values.length * 4), usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST });
  gpu!.gpu.queue.writeBuffer(buffer, 0, Uint32Array.from(Array.from(values)));
  return buffer;
}

/**
 * Packed varlen ([total, H, D] tensors) through the raw-buffer forward and backward under `limits`, on
 * NaN-poisoned outputs; `packedRows` (the host offsets) lets them split over sequences.
 */
export async function runPacked(prepared: Prepared, problem: AttentionProblem, gradOut: Tensor, packedRows: PackedRows | undefined, limits: Limits = {}): Promise<Outputs> {
  const { queryHeads, kvHeads, headDimQk, headDimV } = problem;
  const packed = (heads: number, dim: number) => ({ batch: 0, sequence: heads * dim, head: dim, dim: 1, offset: 0 });
  const targets = poisonedTargets(problem, [prepared.q.shape[0]!, queryHeads], [prepared.k.shape[0]!, kvHeads], {
    gradOut: packed(queryHeads, headDimV),
    dq: packed(queryHeads, headDimQk),
    dk: packed(kvHeads, headDimQk),
    dv: packed(kvHeads, headDimV),
  });
  const withOut = { ...problem, layout: { ...problem.layout, out: targets.layouts.gradOut } };
  const cuSeqlensQ = u32Buffer(prepared.options.cuSeqlensQ!);
  const cuSeqlensK = u32Buffer(prepared.options.cuSeqlensK!);
  const buffers = { ...inputBuffers(prepared, targets, true), cuSeqlensQ, cuSeqlensK, ...(packedRows ? { packedRows } : {}) };
  try {
    return await recordAndRead(withOut, buffers, targets, gradOut, limits);
  } finally {
    targets.dispose();
    cuSeqlensQ.destroy();
    cuSeqlensK.destroy();
  }
}

/** Split results (forward, and backward when given) against the float64 and same-precision references of the case. */
export async function expectCloseToReferences(split: Outputs, prepared: Prepared, gradOut: Tensor | null, gradValues: Float32Array | null, dtype: 'f32' | 'f16', context: string) {
  const forward = forwardReferences(prepared, dtype);
  const comparisons = [
    compare('out', split.out, forward.exact.out, forward.same.out, dtype),
    compare('logsumexp', split.logsumexp, forward.exact.logsumexp, forward.same.logsumexp, dtype),
  ];
  if (gradOut && gradValues) {
    const hostGrad = { data: dtype === 'f16' ? ((await gradOut.toArray()) as Float32Array) : gradValues, shape: [...gradOut.shape] };
    const backward = backwardReferences(prepared, hostGrad, dtype);
    comparisons.push(
      compare('dq', split.dq!, backward.exact.dq, backward.same.dq, dtype),
      compare('dk', split.dk!, backward.exact.dk, backward.same.dk, dtype),
      compare('dv', split.dv!, backward.exact.dv, backward.same.dv, dtype),
    );
  }
  for (const c of comparisons) {
    expect(c.error, `${c.name} error ${c.error} > ${c.allowed} at ${c.index}: ${context}`).toBeLessThanOrEqual(c.allowed);
  }
}

export function expectSameBits(name: string, split: Float32Array | undefined, whole: Float32Array | undefined, context: string): void {
  const a = new Uint32Array(split!.buffer, split!.byteOffset, split!.length);
  const b = new Uint32Array(whole!.buffer, whole!.byteOffset, whole!.length);
  expect(a.length, `${name}: lengths differ; ${context}`).toBe(b.length);
  const first = a.findIndex((bits, index) => bits !== b[index]);
  expect(first, `${name}: split run differs from the unsplit one at ${first} (${split![first]} vs ${whole![first]}); ${context}`).toBe(-1);
}

/**
 * The stored-score tests' comparison (stored-scores.ts, matrix-stored-scores.ts): out, logsumexp, dK and dV of the
 * stored run and the recompute run bit for bit (dK/dV only adds a store), then `check` (dQ against the references).
 */
export async function expectStoredMatches(stored: Outputs, recomputed: Outputs, check: () => Promise<void>, context: string) {
  for (const name of ['out', 'logsumexp', 'dk', 'dv'] as const) expectSameBits(name, stored[name], recomputed[name], context);
  await check();
}

/** Device limits for planning tests of the stored scores (1 GiB bindings, 32 KiB of workgroup storage). */
export const STORED_SCORE_TEST_CAPS = {
  shaderF16: true,
  maxComputeWorkgroupStorageSize: 32768,
  maxComputeInvocationsPerWorkgroup: 256,
  maxComputeWorkgroupsPerDimension: 65535,
  maxStorageBufferBindingSize: 2 ** 30,
  maxStorageBuffersPerShaderStage: 10,
} as const;

/**
 * A packed varlen case (GQA 4/2, head dim 40, causal bottom-right, dropout 0.2) with these offsets: its tensors,
 * problem (with gradients), host offsets and description for messages.
 */
export function preparePacked(device: NonNullable<typeof gpu>, seed: number, cuSeqlensQ: number[], cuSeqlensK: number[], { dtype = 'f32', headDim = 40 }: { dtype?: 'f32' | 'f16'; headDim?: number } = {}) {
  const lengths = (cu: number[]) => Math.max(...cu.slice(1).map((end, b) => end - cu[b]!));
  const spec: FlashCase = {
    batch: cuSeqlensQ.length - 1,
    queryHeads: 4,
    kvHeads: 2,
    queryLength: lengths(cuSeqlensQ),
    keyLength: lengths(cuSeqlensK),
    headDimQk: headDim,
    dtype,
    options: { cuSeqlensQ, cuSeqlensK, isCausal: true, causalAlignment: 'bottom-right', dropoutP: 0.2, dropoutSeed: seed, dropoutOffset: 5 },
  };
  const prepared = prepare(device, spec, seed);
  const problem = describeAttention(prepared.q, prepared.k, prepared.v, { ...prepared.options, requiresGrad: true });
  return { prepared, problem, packedRows: { cuSeqlensQ, cuSeqlensK }, context: describeCase(spec, seed) };
}
