import { gpu } from '../test/test-device';
import { DeviceMismatchError, InvalidArgumentError, ShapeError, cpuDevice, tensor } from '@webattn/tensor';
import { expectNoGpuErrors, freshSeed, randomValues } from '@webattn/tensor/testing';
import { attentionReference, attentionReferenceBackward } from '@webattn/reference';
import { afterAll, describe, expect, it } from 'vitest';
import { backwardReferences, compare, describeCase, forwardReferences, poisonPool, prepare, type FlashCase } from '../test/flash-harness';
import { flashAttention, flashAttentionGrad } from './flash-attention';

afterAll(() => gpu?.destroy());

const causalMask = (l: number, s: number) => Array.from({ length: l * s }, (_, e) => (Math.floor(e / s) >= e % s ? 1 : 0));

const CASES: [string, FlashCase][] = [
  ['basic f32', { batch: 2, queryHeads: 2, queryLength: 17, keyLength: 23, headDimQk: 40 }],
  ['head dim 59, Dv 24, BLHD layout', { batch: 1, queryHeads: 3, queryLength: 9, keyLength: 70, headDimQk: 59, headDimV: 24, layout: 'blhd' }],
  ['head dim 111, single row', { batch: 1, queryHeads: 1, queryLength: 1, keyLength: 97, headDimQk: 111 }],
  ['head dim 256', { batch: 1, queryHeads: 1, queryLength: 5, keyLength: 33, headDimQk: 256, headDimV: 200 }],
  ['causal top-left L < S', { batch: 1, queryHeads: 2, queryLength: 19, keyLength: 45, headDimQk: 32, options: { isCausal: true } }],
  ['causal bottom-right L < S', { batch: 1, queryHeads: 2, queryLength: 19, keyLength: 45, headDimQk: 32, options: { isCausal: true, causalAlignment: 'bottom-right' } }],
  ['causal bottom-right L > S (fully masked rows)', { batch: 1, queryHeads: 1, queryLength: 30, keyLength: 12, headDimQk: 16, options: { isCausal: true, causalAlignment: 'bottom-right' } }],
  ['sliding window + causal', { batch: 1, queryHeads: 2, queryLength: 80, keyLength: 80, headDimQk: 24, options: { isCausal: true, window: [7, 0] } }],
  ['window both sides', { batch: 1, queryHeads: 1, queryLength: 40, keyLength: 70, headDimQk: 24, options: { window: [5, 9], causalAlignment: 'bottom-right' } }],
  ['softcap, custom scale', { batch: 1, queryHeads: 2, queryLength: 21, keyLength: 21, headDimQk: 48, options: { softcap: 2.5, scale: 0.9 } }],
  ['GQA 6q/2kv', { batch: 2, queryHeads: 6, kvHeads: 2, queryLength: 13, keyLength: 29, headDimQk: 32, layout: 'blhd' }],
  ['MQA 4q/1kv causal', { batch: 1, queryHeads: 4, kvHeads: 1, queryLength: 17, keyLength: 17, headDimQk: 20, options: { isCausal: true } }],
  ['bool mask [L, S] broadcast', { batch: 2, queryHeads: 2, queryLength: 11, keyLength: 11, headDimQk: 16, mask: { shape: [11, 11], dtype: 'bool', data: causalMask(11, 11) } }],
  ['bool mask [B,1,1,S] with a fully masked batch', { batch: 2, queryHeads: 2, queryLength: 7, keyLength: 13, headDimQk: 16, mask: { shape: [2, 1, 1, 13], dtype: 'bool', data: [...Array(13).fill(0), ...Array.from({ length: 13 }, (_, j) => (j % 3 === 0 ? 1 : 0))] } }],
  // Key tiles of a row-broadcast bool mask are marked live or dead per workgroup, up to 512 tiles (flash-common.wgsl): at
  // 9000 keys the tiles past the marks run unmarked, a lone allowed key in the middle keeps its tile.
  ['bool key padding [1,1,1,S] past the marked tiles', { batch: 1, queryHeads: 1, queryLength: 6, keyLength: 9000, headDimQk: 8, mask: { shape: [1, 1, 1, 9000], dtype: 'bool', data: Array.from({ length: 9000 }, (_, j) => (j < 3 || j === 4500 || j >= 8990 ? 1 : 0)) } }],
  ['additive f32 mask [B,H,L,S] with -inf', { batch: 1, queryHeads: 2, queryLength: 9, keyLength: 14, headDimQk: 16, mask: { shape: [1, 2, 9, 14], dtype: 'f32', data: Array.from(randomValues(252, 7, -3, 1), (x) => (x < -2 ? Number.NEGATIVE_INFINITY : x)) } }],
  ['key lengths', { batch: 3, queryHeads: 2, queryLength: 10, keyLength: 37, headDimQk: 16, options: { keyLengths: [37, 5, 0] } }],
  ['key lengths + causal bottom-right', { batch: 2, queryHeads: 1, queryLength: 10, keyLength: 37, headDimQk: 16, options: { keyLengths: [20, 33], isCausal: true, causalAlignment: 'bottom-right' } }],
  ['varlen packed', { batch: 3, queryHeads: 2, queryLength: 0, keyLength: 0, headDimQk: 16, options: { cuSeqlensQ: [0, 5, 5, 19], cuSeqlensK: [0, 9, 12, 40], isCausal: true, causalAlignment: 'bottom-right' } }],
  ['dropout', { batch: 1, queryHeads: 2, queryLength: 18, keyLength: 35, headDimQk: 16, options: { dropoutP: 0.3, dropoutSeed: 1234567, dropoutOffset: 5 } }],
  ['f16 basic', { batch: 1, queryHeads: 2, queryLength: 17, keyLength: 40, headDimQk: 40, dtype: 'f16' }],
  ['f16 causal GQA dropout BLHD', { batch: 1, queryHeads: 4, kvHeads: 2, queryLength: 15, keyLength: 15, headDimQk: 64, dtype: 'f16', layout: 'blhd', options: { isCausal: true, dropoutP: 0.2, dropoutSeed: 99 } }],
  ['window left only [6, -1]', { batch: 1, queryHeads: 2, queryLength: 30, keyLength: 30, headDimQk: 16, options: { window: [6, -1] } }],
  ['window right only [-1, 4], bottom-right, L < S', { batch: 1, queryHeads: 1, queryLength: 20, keyLength: 70, headDimQk: 16, options: { window: [-1, 4], causalAlignment: 'bottom-right' } }],
  ['varlen + GQA + dropout, an empty query sequence', { batch: 3, queryHeads: 4, kvHeads: 2, queryLength: 0, keyLength: 0, headDimQk: 24, options: { cuSeqlensQ: [0, 7, 7, 30], cuSeqlensK: [0, 11, 20, 20], dropoutP: 0.25, dropoutSeed: 77, dropoutOffset: 3 } }],
  ['softcap + additive mask + dropout + causal bottom-right', { batch: 2, queryHeads: 2, queryLength: 25, keyLength: 31, headDimQk: 32, headDimV: 48, mask: { shape: [2, 1, 25, 31], dtype: 'f32', data: randomValues(1550, 9, -2, 1) }, options: { softcap: 4, dropoutP: 0.15, dropoutSeed: 5, isCausal: true, causalAlignment: 'bottom-right' } }],
  ['f16 varlen causal', { batch: 2, queryHeads: 2, queryLength: 0, keyLength: 0, headDimQk: 40, dtype: 'f16', options: { cuSeqlensQ: [0, 13, 30], cuSeqlensK: [0, 13, 30], isCausal: true } }],
  ['f16 additive f16 mask', { batch: 1, queryHeads: 1, queryLength: 6, keyLength: 10, headDimQk: 8, dtype: 'f16', mask: { shape: [6, 10], dtype: 'f16', data: randomValues(60, 3, -2, 2) } }],
];

describe.skipIf(!gpu)('flashAttention and flashAttentionGrad match the float64 reference', () => {
  for (const [name, spec] of CASES) {
    it(name, async () => {
      const device = gpu!;
      if (spec.dtype === 'f16' && !device.caps.shaderF16) return;
      const dtype = spec.dtype ?? 'f32';
      const prepared = prepare(device, spec);
      const context = describeCase(spec, prepared.seed);
      const outCount = prepared.q.size / spec.headDimQk * (spec.headDimV ?? spec.headDimQk);
      await poisonPool(device, [outCount, prepared.q.size, prepared.k.size, prepared.v.size]);
      const { out, logsumexp } = await expectNoGpuErrors(device, () => flashAttention(prepared.q, prepared.k, prepared.v, prepared.options));
      const forward = forwardReferences(prepared, dtype);
      const outValues = await out.toArray();
      const lseValues = await logsumexp.toArray();
      const lseExpected = forward.exact.logsumexp;
      for (const c of [
        compare('out', outValues, forward.exact.out, forward.same.out, dtype),
        compare('logsumexp', lseValues, lseExpected, forward.same.logsumexp, dtype),
      ]) {
        expect(c.error, `${c.name} error ${c.error} > ${c.allowed} at ${c.index}: ${context}`).toBeLessThanOrEqual(c.allowed);
      }
      const gradValues = randomValues(outValues.length, prepared.seed + 3, -1, 1);
      const gradOut = tensor(device, gradValues, out.shape, { dtype });
      const hostGrad = { data: dtype === 'f16' ? await gradOut.toArray() : gradValues, shape: out.shape };
      await poisonPool(device, [prepared.q.size, prepared.k.size, prepared.v.size]);
      const grads = await expectNoGpuErrors(device, () =>
        flashAttentionGrad(prepared.q, prepared.k, prepared.v, out, logsumexp, gradOut, prepared.options),
      );
      const backward = backwardReferences(prepared, hostGrad, dtype);
      for (const c of [
        compare('dq', await grads.dq.toArray(), backward.exact.dq, backward.same.dq, dtype),
        compare('dk', await grads.dk.toArray(), backward.exact.dk, backward.same.dk, dtype),
        compare('dv', await grads.dv.toArray(), backward.exact.dv, backward.same.dv, dtype),
      ]) {
        expect(c.error, `${c.name} error ${c.error} > ${c.allowed} at ${c.index}: ${context}`).toBeLessThanOrEqual(c.allowed);
      }
      for (const t of [out, logsumexp, gradOut, grads.dq, grads.dk, grads.dv, prepared.q, prepared.k, prepared.v]) t.dispose();
      prepared.attnMask?.dispose();
    });
  }
});

describe.skipIf(!gpu)('flash never reads keys past keyLengths', () => {
  it('NaN in padded keys and values leaves out, logsumexp and gradients finite and right', async () => {
    const device = gpu!;
    const [B, H, L, S, D] = [2, 2, 12, 40, 16];
    const keyLengths = [9, 40];
    const seed = freshSeed();
    const padded = (values: Float32Array) => {
      for (let h = 0; h < H; h++) for (let j = keyLengths[0]!; j < S; j++) for (let d = 0; d < D; d++) values[(h * S + j) * D + d] = Number.NaN;
      return values;
    };
    const qValues = randomValues(B * H * L * D, seed);
    const kValues = padded(randomValues(B * H * S * D, seed + 1));
    const vValues = padded(randomValues(B * H * S * D, seed + 2));
    const gradValues = randomValues(B * H * L * D, seed + 3);
    const [q, k, v, gradOut] = [
      tensor(device, qValues, [B, H, L, D]),
      tensor(device, kValues, [B, H, S, D]),
      tensor(device, vValues, [B, H, S, D]),
      tensor(device, gradValues, [B, H, L, D]),
    ];
    const options = { keyLengths, isCausal: true, causalAlignment: 'bottom-right' as const };
    const { out, logsumexp, dq, dk, dv } = await expectNoGpuErrors(device, () => {
      const forward = flashAttention(q, k, v, options);
      return { ...forward, ...flashAttentionGrad(q, k, v, forward.out, forward.logsumexp, gradOut, options) };
    });
    const host = (data: Float32Array, n: number) => ({ data, shape: [B, H, n, D] });
    const inputs = [host(qValues, L), host(kValues, S), host(vValues, S)] as const;
    const exact = attentionReference(...inputs, options);
    const same = attentionReference(...inputs, { ...options, precision: 'f32' });
    const exactGrads = attentionReferenceBackward(...inputs, host(gradValues, L), options);
    const sameGrads = attentionReferenceBackward(...inputs, host(gradValues, L), { ...options, precision: 'f32' });
    const checks = [
      compare('out', await out.toArray(), exact.out, same.out, 'f32'),
      compare('logsumexp', await logsumexp.toArray(), exact.logsumexp, same.logsumexp, 'f32'),
      compare('dq', await dq.toArray(), exactGrads.dq, sameGrads.dq, 'f32'),
      // Padded keys get zero gradients (the reference's NaN-free zeros there too).
      compare('dk', await dk.toArray(), exactGrads.dk, sameGrads.dk, 'f32'),
      compare('dv', await dv.toArray(), exactGrads.dv, sameGrads.dv, 'f32'),
    ];
    for (const c of checks) expect(c.error, `${c.name} error ${c.error} > ${c.allowed} at ${c.index}; seed ${seed}`).toBeLessThanOrEqual(c.allowed);
    for (const t of [q, k, v, gradOut, out, logsumexp, dq, dk, dv]) t.dispose();
  });
});

describe.skipIf(!gpu)('flashAttention errors', () => {
  it('throws typed errors naming the problem instead of WebGPU validation errors', async () => {
    const device = gpu!;
    const q = tensor(device, randomValues(2 * 4 * 8, 1), [1, 2, 4, 8]);
    const cpu = cpuDevice();
    const onCpu = tensor(cpu, randomValues(2 * 4 * 8, 1), [1, 2, 4, 8]);
    expect(() => flashAttention(onCpu, onCpu, onCpu)).toThrow(DeviceMismatchError);
    expect(() => flashAttention(q, q, q, { needWeights: true })).toThrow(InvalidArgumentError);
    expect(() => flashAttention(q, q, q, { needWeights: true })).toThrow(/flash: needWeights true, need false/);
    const wide = tensor(device, randomValues(2 * 4 * 300, 2), [1, 2, 4, 300]);
    expect(() => flashAttention(wide, wide, wide)).toThrow(/head dim qk 300, need 1\.\.256/);
    const { out, logsumexp } = flashAttention(q, q, q);
    expect(() => flashAttentionGrad(q, q, q, out, logsumexp, wide)).toThrow(ShapeError);
    await expectNoGpuErrors(device, () => undefined);
    for (const t of [q, onCpu, wide, out, logsumexp]) t.dispose();
  });
});
