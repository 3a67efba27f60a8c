import { gpu } from '../test/test-device';
import { bhndLayout, describeAttention, type AttentionProblem } from '@webattn/tensor';
import { expectNoGpuErrors, randomValues } from '@webattn/tensor/testing';
import { afterAll, describe, expect, it } from 'vitest';
import { compare, describeCase, forwardReferences, poisonPool, prepare, type FlashCase } from '../test/flash-harness';
import { checkSplitKv, splitKvAttention, splitKvAttentionForward, splitPlan } from './split-kv';
import { testProblem } from '../test/test-problem';

afterAll(() => gpu?.destroy());

const padding = (batch: number, length: number, keep: (b: number, j: number) => boolean) =>
  Array.from({ length: batch * length }, (_, e) => (keep(Math.floor(e / length), e % length) ? 1 : 0));

const CASES: [string, FlashCase][] = [
  ['MQA L1 S1024 D64', { batch: 2, queryHeads: 4, kvHeads: 1, queryLength: 1, keyLength: 1024, headDimQk: 64 }],
  ['L16 S2048 causal bottom-right + key lengths', { batch: 2, queryHeads: 2, queryLength: 16, keyLength: 2048, headDimQk: 32, options: { isCausal: true, causalAlignment: 'bottom-right', keyLengths: [2048, 777] } }],
  ['GQA 4/2 L4 S8192 bool padding mask [B,1,1,S]', { batch: 2, queryHeads: 4, kvHeads: 2, queryLength: 4, keyLength: 8192, headDimQk: 16, layout: 'blhd', mask: { shape: [2, 1, 1, 8192], dtype: 'bool', data: padding(2, 8192, (b, j) => j < 8192 - 3000 * b && j % 7 !== 3) } }],
  ['L3 S1500 additive mask [L,S], Dv 40, window', { batch: 1, queryHeads: 2, queryLength: 3, keyLength: 1500, headDimQk: 24, headDimV: 40, mask: { shape: [3, 1500], dtype: 'f32', data: randomValues(4500, 11, -4, 2) }, options: { window: [600, 100], causalAlignment: 'bottom-right' } }],
  ['L2 S1024 D256 softcap, fully masked batch (key length 0)', { batch: 2, queryHeads: 1, queryLength: 2, keyLength: 1024, headDimQk: 256, options: { softcap: 3, keyLengths: [0, 1024] } }],
  ['f16 L5 S1100 GQA f16 mask', { batch: 1, queryHeads: 4, kvHeads: 2, queryLength: 5, keyLength: 1100, headDimQk: 32, dtype: 'f16', mask: { shape: [5, 1100], dtype: 'f16', data: randomValues(5500, 5, -2, 2) } }],
];

describe.skipIf(!gpu)('splitKvAttention matches the float64 reference on decode shapes', () => {
  for (const [name, spec] of CASES) {
    it(name, async () => {
      const device = gpu!;
      if (spec.dtype === 'f16' && !device.caps.shaderF16) return;
      const dtype = spec.dtype ?? 'f32';
      const prepared = prepare(device, spec);
      const context = describeCase(spec, prepared.seed);
      await poisonPool(device, [prepared.q.size / spec.headDimQk * (spec.headDimV ?? spec.headDimQk)]);
      const { out, logsumexp } = await expectNoGpuErrors(device, () => splitKvAttention(prepared.q, prepared.k, prepared.v, prepared.options));
      const forward = forwardReferences(prepared, dtype);
      for (const c of [
        compare('out', await out.toArray(), forward.exact.out, forward.same.out, dtype),
        compare('logsumexp', await logsumexp.toArray(), forward.exact.logsumexp, forward.same.logsumexp, dtype),
      ]) {
        expect(c.error, `${c.name} error ${c.error} > ${c.allowed} at ${c.index}: ${context}`).toBeLessThanOrEqual(c.allowed);
      }
      for (const t of [out, logsumexp, prepared.q, prepared.k, prepared.v]) t.dispose();
      prepared.attnMask?.dispose();
    });
  }
});

const problem = (overrides: Partial<AttentionProblem> = {}): AttentionProblem =>
  testProblem(
    {
      batch: 1,
      queryHeads: 2,
      kvHeads: 2,
      queryLength: 4,
      keyLength: 4096,
      headDimQk: 64,
      headDimV: 64,
      dtype: 'f32',
      scale: 0.125,
      layout: { q: bhndLayout(2, 4, 64), k: bhndLayout(2, 4096, 64), v: bhndLayout(2, 4096, 64), out: bhndLayout(2, 4, 64) },
    },
    overrides,
  );

const caps = {
  shaderF16: true,
  maxComputeWorkgroupStorageSize: 16384,
  maxComputeInvocationsPerWorkgroup: 256,
  maxComputeWorkgroupsPerDimension: 65535,
  maxStorageBufferBindingSize: 2 ** 27,
  maxStorageBuffersPerShaderStage: 8,
};

describe('checkSplitKv', () => {
  it('accepts a decode shape', () => {
    expect(checkSplitKv(problem(), caps)).toEqual([]);
  });
  it('names every reason it cannot run', () => {
    const rejections = checkSplitKv(
      problem({ queryLength: 17, keyLength: 512, dropout: { p: 0.1, seed: 1, offset: 0 }, requiresGrad: true, headDimQk: 320 }),
      caps,
    );
    expect(rejections.map((r) => r.check).sort()).toEqual(['dropout', 'head dim qk', 'key length', 'query length', 'requiresGrad'].sort());
    expect(rejections.every((r) => r.backend === 'efficient' && r.message.startsWith('efficient: '))).toBe(true);
  });
  it('splits long keys into chunks of at most 512 keys, a multiple of 4', () => {
    for (const keyLength of [1024, 1025, 8192, 100_000]) {
      const plan = splitPlan(problem({ keyLength }));
      expect(plan.length % 4).toBe(0);
      expect(plan.length).toBeLessThanOrEqual(512);
      expect(plan.count * plan.length).toBeGreaterThanOrEqual(keyLength);
      expect((plan.count - 1) * plan.length).toBeLessThan(keyLength);
    }
  });
});

describe.skipIf(!gpu)('splitKvAttentionForward on raw GPUBuffers', () => {
  it('writes out and logsumexp into the caller’s buffers through its own encoder', async () => {
    const device = gpu!;
    const spec: FlashCase = { batch: 1, queryHeads: 2, kvHeads: 1, queryLength: 3, keyLength: 1030, headDimQk: 20, options: { isCausal: true, causalAlignment: 'bottom-right' } };
    const prepared = prepare(device, spec);
    const problem = describeAttention(prepared.q, prepared.k, prepared.v, prepared.options);
    const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
    const poisoned = (count: number) => {
      const buffer = device.gpu.createBuffer({ size: count * 4, usage });
      device.gpu.queue.writeBuffer(buffer, 0, new Float32Array(count).fill(Number.NaN));
      return buffer;
    };
    const out = poisoned(2 * 3 * 20);
    const logsumexp = poisoned(2 * 3);
    await expectNoGpuErrors(device, () => {
      const encoder = device.gpu.createCommandEncoder();
      const recording = splitKvAttentionForward(device.gpu, problem, { q: prepared.q.buffer, k: prepared.k.buffer, v: prepared.v.buffer, out, logsumexp }, { encoder });
      device.gpu.queue.submit([encoder.finish()]);
      recording.release();
    });
    const read = async (buffer: GPUBuffer, count: number) => {
      const staging = device.gpu.createBuffer({ size: count * 4, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
      const encoder = device.gpu.createCommandEncoder();
      encoder.copyBufferToBuffer(buffer, 0, staging, 0, count * 4);
      device.gpu.queue.submit([encoder.finish()]);
      await staging.mapAsync(GPUMapMode.READ);
      const values = new Float32Array(staging.getMappedRange().slice(0));
      staging.destroy();
      return values;
    };
    const forward = forwardReferences(prepared, 'f32');
    const context = describeCase(spec, prepared.seed);
    for (const c of [
      compare('out', await read(out, 2 * 3 * 20), forward.exact.out, forward.same.out, 'f32'),
      compare('logsumexp', await read(logsumexp, 2 * 3), forward.exact.logsumexp, forward.same.logsumexp, 'f32'),
    ]) {
      expect(c.error, `${c.name} error ${c.error} > ${c.allowed} at ${c.index}: ${context}`).toBeLessThanOrEqual(c.allowed);
    }
    out.destroy();
    logsumexp.destroy();
    for (const t of [prepared.q, prepared.k, prepared.v]) t.dispose();
  });
});
