import { rejection, type AttentionLayout, type AttentionProblem, type Rejection } from '@webattn/tensor';
import type { Overflow } from './binding-chunks';
import { OVERFLOW_REASON, backwardBindings, forwardBindings, planKernelChunks, planKeyValue, type KernelBindings } from './flash-chunks';
import { MAX_HEAD_DIM, chooseTiles, minimumStorage, type FlashCaps } from './flash-tiles';
import { splitKvKernelsOf } from './split-kv-record';

const BACKEND = 'flash';

/** Storage buffers the widest kernel binds (forward: 5; dK/dV backward: 8), plus optional inputs. */
export function storageBuffersNeeded(problem: AttentionProblem): number {
  const optional = (problem.mask.kind === 'none' ? 0 : 1) + (problem.keyLengths ? 1 : 0) + (problem.varlen ? 2 : 0);
  return (problem.requiresGrad ? 8 : 5) + optional;
}

/** Highest element index a layout reaches for [batch, heads, sequence, dim] (+ 1). */
export function layoutSpan(layout: AttentionLayout, batch: number, heads: number, sequence: number, dim: number): number {
  return (
    layout.offset +
    (batch - 1) * layout.batch +
    (heads - 1) * layout.head +
    (sequence - 1) * layout.sequence +
    (dim - 1) * layout.dim +
    1
  );
}

function checkLayout(name: string, layout: AttentionLayout, out: Rejection[]): void {
  const values = [layout.batch, layout.head, layout.sequence, layout.dim, layout.offset];
  if (values.some((value) => !Number.isInteger(value) || value < 0 || value > 0xffffffff)) {
    out.push(rejection(BACKEND, `${name} strides`, values.join(','), 'non-negative integer strides and offset below 2^32'));
  }
}

/**
 * Every reason the flash backend cannot run `problem` on a device with `caps` (empty when it can). Each
 * rejection names the value it got and what it needs.
 */
export function checkFlash(problem: AttentionProblem, caps: FlashCaps): Rejection[] {
  const common = checkCommon(problem, caps, BACKEND);
  const bindings: Rejection[] = [];
  if (common.length === 0) {
    const gradients = { gradOut: problem.layout.out, dq: problem.layout.q, dk: problem.layout.k, dv: problem.layout.v };
    // Packed varlen: no offsets here, so plan for sequences all as long as the longest ('longest').
    const packing = problem.varlen ? 'longest' : undefined;
    // The forward falls back to split-KV over key chunks when the flash kernel's smallest chunk does not fit.
    const flashForward = checkBindings(problem, caps, BACKEND, [forwardBindings(problem, true, packing)]);
    if (flashForward.length > 0) bindings.push(...checkBindings(problem, caps, BACKEND, [splitKvKernelsOf(problem, caps, true, packing).plan]));
    const { delta, query } = backwardBindings(problem, gradients, true, packing);
    if (problem.requiresGrad && bindings.length === 0) bindings.push(...checkBindings(problem, caps, BACKEND, [delta, query]));
    const keyValue = problem.requiresGrad && bindings.length === 0 ? planKeyValue(problem, gradients, true, caps.maxStorageBufferBindingSize, packing) : null;
    if (keyValue && 'overflow' in keyValue) bindings.push(bindingRejection(BACKEND, keyValue.overflow, caps.maxStorageBufferBindingSize));
  }
  return [...common, ...bindings, ...checkWeights(problem)];
}

/**
 * Flash splits a dispatch over batch entries (packed varlen: sequences), heads, query rows and keys so that no
 * binding exceeds the limit (the logsumexp and the backward's delta follow the chunk's rows); it refuses only when
 * even the smallest chunk does not fit (one row × one key split in the forward, one row × 256 keys in the
 * backward: e.g. a mask whose column stride times 256 keys exceeds it). For packed varlen the kernels are planned
 * with 'longest' packing: the rows of the longest sequence at the least favourable alignment, so that any packing
 * with these longest lengths fits (the raw-buffer API without host offsets binds whole buffers and checks them
 * when recording). Run after checkCommon found nothing (it needs valid sizes).
 */
export function checkBindings(problem: AttentionProblem, caps: FlashCaps, backend: string, kernels: readonly KernelBindings[]): Rejection[] {
  const limit = caps.maxStorageBufferBindingSize;
  for (const kernel of kernels) {
    const plan = planKernelChunks(problem, kernel, limit);
    if ('overflow' in plan) return [bindingRejection(backend, plan.overflow, limit)];
  }
  return [];
}

function bindingRejection(backend: string, overflow: Overflow, limit: number): Rejection {
  return rejection(
    backend,
    `${overflow.name} binding size`,
    `${overflow.bytes} B`,
    `≤ ${limit} B`,
    OVERFLOW_REASON,
  );
}

function checkWeights(problem: AttentionProblem): Rejection[] {
  return problem.needWeights
    ? [rejection(BACKEND, 'needWeights', 'true', 'false', 'flash never materialises the attention weights; use the math backend')]
    : [];
}

/** Checks shared by flash and the split-KV ('efficient') backend. */
export function checkCommon(problem: AttentionProblem, caps: FlashCaps, backend: string): Rejection[] {
  const out: Rejection[] = [];
  const reject = (check: string, got: string | number, need: string, why = '') => out.push(rejection(backend, check, got, need, why));
  if (problem.dtype === 'f16' && !caps.shaderF16) {
    reject('dtype', 'f16', "f32, or a device with 'shader-f16'", 'this device lacks the shader-f16 feature');
  }
  if (problem.dtype !== 'f16' && problem.dtype !== 'f32') reject('dtype', problem.dtype, "'f32' or 'f16'");
  for (const [name, dim] of [['head dim qk', problem.headDimQk], ['head dim v', problem.headDimV]] as const) {
    if (!Number.isInteger(dim) || dim < 1 || dim > MAX_HEAD_DIM) reject(name, dim, `1..${MAX_HEAD_DIM}`);
  }
  if (problem.headDimQk <= MAX_HEAD_DIM && problem.headDimV <= MAX_HEAD_DIM && !chooseTiles(problem, caps)) {
    reject(
      'workgroup storage',
      caps.maxComputeWorkgroupStorageSize,
      `≥ ${minimumStorage(problem)} B`,
      `head dims ${problem.headDimQk}/${problem.headDimV} need a key tile of at least 4 rows`,
    );
  }
  if (problem.kvHeads < 1 || problem.queryHeads % problem.kvHeads !== 0) {
    reject('heads', `${problem.queryHeads} query / ${problem.kvHeads} kv`, 'query heads a multiple of kv heads');
  }
  if (problem.varlen && problem.mask.kind !== 'none') {
    reject('mask with varlen', problem.mask.kind, 'no attnMask with cuSeqlens', 'express padding through the sequence lengths');
  }
  if (problem.varlen && problem.keyLengths) {
    reject('keyLengths with varlen', 'both', 'one of them', 'cuSeqlensK already gives every key length');
  }
  if (problem.mask.kind !== 'none') {
    const { batch, head, row, column } = problem.mask.strides;
    const values = [batch, head, row, column, problem.mask.offset];
    if (values.some((value) => !Number.isInteger(value) || value < 0 || value > 0xffffffff)) {
      reject('mask strides', values.join(','), 'non-negative integer strides');
    }
    if (problem.mask.kind === 'bool' && problem.mask.dtype !== 'bool') reject('bool mask dtype', problem.mask.dtype, "'bool'");
    if (problem.mask.kind === 'additive' && problem.mask.dtype === 'bool') reject('additive mask dtype', 'bool', "'f32' or 'f16'");
  }
  if (problem.window) {
    const { left, right } = problem.window;
    if (!Number.isInteger(left) || !Number.isInteger(right) || left < -1 || right < -1) {
      reject('window', `[${left}, ${right}]`, 'integers ≥ −1 (−1 = unbounded)');
    }
  }
  if (problem.softcap !== null && !(problem.softcap > 0)) reject('softcap', problem.softcap, 'a positive number or none');
  if (problem.dropout && !(problem.dropout.p >= 0 && problem.dropout.p < 1)) reject('dropout p', problem.dropout.p, '0 ≤ p < 1');
  if (!(Number.isFinite(problem.scale))) reject('scale', problem.scale, 'a finite number');
  const sizes = [problem.batch, problem.queryHeads, problem.queryLength, problem.keyLength];
  if (sizes.some((size) => !Number.isInteger(size) || size < 0)) reject('sizes', sizes.join(','), 'non-negative integers');
  const workgroups = caps.maxComputeWorkgroupsPerDimension || 65535;
  if (problem.batch > workgroups) reject('batch', problem.batch, `≤ ${workgroups}`, 'one workgroup row per batch entry');
  if (problem.queryHeads > workgroups) reject('query heads', problem.queryHeads, `≤ ${workgroups}`);
  // Every kernel covers at least one row or key per thread of a workgroup (chooseTiles' thread count).
  const rowsPerWorkgroup = Math.min(64, caps.maxComputeInvocationsPerWorkgroup || 64);
  if (Math.ceil(Math.max(problem.queryLength, problem.keyLength) / rowsPerWorkgroup) > workgroups) {
    reject('sequence length', Math.max(problem.queryLength, problem.keyLength), `≤ ${workgroups * rowsPerWorkgroup}`, 'one workgroup per tile of rows');
  }
  const layout = problem.layout;
  checkLayout('q', layout.q, out);
  checkLayout('k', layout.k, out);
  checkLayout('v', layout.v, out);
  checkLayout('out', layout.out, out);
  const needed = storageBuffersNeeded(problem);
  if (caps.maxStorageBuffersPerShaderStage && needed > caps.maxStorageBuffersPerShaderStage) {
    reject('storage buffers', needed, `≤ ${caps.maxStorageBuffersPerShaderStage}`, 'the maxStorageBuffersPerShaderStage limit');
  }
  return out;
}
