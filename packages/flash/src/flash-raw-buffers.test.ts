/**
 * The raw-buffer API: plain GPUBuffers plus an AttentionProblem, as another WebGPU engine would call it
 * ([B, L, H, D] memory through strides, outputs poisoned with NaN, own encoder or self-submitted).
 */
import { gpu } from '../test/test-device';
import { attentionReference, attentionReferenceBackward } from '@webattn/reference';
import { expectAttentionClose } from '@webattn/reference/testing';
import { InvalidArgumentError, ShapeError, bnhdLayout, bhndLayout, type AttentionProblem } from '@webattn/tensor';
import { expectNoGpuErrors, freshSeed, randomValues } from '@webattn/tensor/testing';
import { afterAll, describe, expect, it } from 'vitest';
import { flashAttentionBackward } from './flash-backward';
import { flashAttentionForward } from './flash-forward';

afterAll(() => gpu?.destroy());

const USAGE = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;

function upload(device: GPUDevice, values: Float32Array | Uint32Array): GPUBuffer {
  const buffer = device.createBuffer({ size: Math.max(16, values.byteLength), usage: USAGE });
  device.queue.writeBuffer(buffer, 0, values as Float32Array<ArrayBuffer>);
  return buffer;
}

function poisoned(device: GPUDevice, count: number): GPUBuffer {
  return upload(device, new Float32Array(count).fill(Number.NaN));
}

async function read(device: GPUDevice, buffer: GPUBuffer, count: number): Promise<Float32Array> {
  const staging = device.createBuffer({ size: count * 4, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const encoder = device.createCommandEncoder();
  encoder.copyBufferToBuffer(buffer, 0, staging, 0, count * 4);
  device.queue.submit([encoder.finish()]);
  await staging.mapAsync(GPUMapMode.READ);
  const values = new Float32Array(staging.getMappedRange().slice(0));
  staging.destroy();
  return values;
}

const [B, H, L, S, D] = [2, 3, 21, 45, 24];

function blhdProblem(overrides: Partial<AttentionProblem> = {}): AttentionProblem {
  return {
    batch: B,
    queryHeads: H,
    kvHeads: H,
    queryLength: L,
    keyLength: S,
    headDimQk: D,
    headDimV: D,
    dtype: 'f32',
    scale: 1 / Math.sqrt(D),
    layout: { q: bnhdLayout(H, L, D), k: bnhdLayout(H, S, D), v: bnhdLayout(H, S, D), out: bnhdLayout(H, L, D) },
    mask: { kind: 'none' },
    keyLengths: true,
    varlen: false,
    causal: true,
    window: null,
    causalAlignment: 'bottom-right',
    softcap: null,
    dropout: null,
    needWeights: false,
    requiresGrad: true,
    ...overrides,
  };
}

describe.skipIf(!gpu)('flashAttentionForward / flashAttentionBackward on raw GPUBuffers', () => {
  for (const storage of [undefined, 16384]) {
    it(`[B, L, H, D] buffers, key lengths, causal bottom-right (workgroup storage ${storage ?? 'device limit'})`, async () => {
      const device = gpu!;
      const raw = device.gpu;
      const seed = freshSeed();
      const q = randomValues(B * L * H * D, seed);
      const k = randomValues(B * S * H * D, seed + 1);
      const v = randomValues(B * S * H * D, seed + 2);
      const gradOut = randomValues(B * L * H * D, seed + 3);
      const keyLengths = [45, 17];
      const problem = blhdProblem();
      const buffers = {
        q: upload(raw, q),
        k: upload(raw, k),
        v: upload(raw, v),
        out: poisoned(raw, B * L * H * D),
        logsumexp: poisoned(raw, B * H * L),
        keyLengths: upload(raw, Uint32Array.from(keyLengths)),
        gradOut: upload(raw, gradOut),
        dq: poisoned(raw, q.length),
        dk: poisoned(raw, k.length),
        dv: poisoned(raw, v.length),
      };
      await expectNoGpuErrors(device, async () => {
        const recording = flashAttentionForward(raw, problem, buffers, storage ? { workgroupStorageLimit: storage } : {});
        recording.release();
        const encoder = raw.createCommandEncoder();
        const backward = flashAttentionBackward(raw, problem, buffers, { encoder, ...(storage ? { workgroupStorageLimit: storage } : {}) });
        raw.queue.submit([encoder.finish()]);
        backward.release();
      });
      const host = (data: Float32Array, n: number) => ({ data, shape: [B, H, n, D], strides: [n * H * D, D, H * D, 1] });
      const options = { isCausal: true, causalAlignment: 'bottom-right' as const, keyLengths };
      const inputs = [host(q, L), host(k, S), host(v, S)] as const;
      const exact = attentionReference(...inputs, options);
      const same = attentionReference(...inputs, { ...options, precision: 'f32' });
      const context = `seed ${seed}`;
      // The reference lays out out as contiguous [B, H, L, D]; ours is [B, L, H, D].
      const out = await read(raw, buffers.out, B * L * H * D);
      const outBhld = new Float32Array(out.length);
      for (let b = 0; b < B; b++) for (let h = 0; h < H; h++) for (let i = 0; i < L; i++) for (let d = 0; d < D; d++) {
        outBhld[((b * H + h) * L + i) * D + d] = out[((b * L + i) * H + h) * D + d]!;
      }
      expectAttentionClose(`out (${context})`, outBhld, exact.out, same.out, 'f32', seed);
      expectAttentionClose(`logsumexp (${context})`, await read(raw, buffers.logsumexp, B * H * L), exact.logsumexp, same.logsumexp, 'f32', seed);
      const gradHost = { data: gradOut, shape: [B, H, L, D], strides: [L * H * D, D, H * D, 1] };
      const exactGrads = attentionReferenceBackward(...inputs, gradHost, options);
      const sameGrads = attentionReferenceBackward(...inputs, gradHost, { ...options, precision: 'f32' });
      const toBhld = (values: Float32Array, n: number) => {
        const result = new Float32Array(values.length);
        for (let b = 0; b < B; b++) for (let h = 0; h < H; h++) for (let i = 0; i < n; i++) for (let d = 0; d < D; d++) {
          result[((b * H + h) * n + i) * D + d] = values[((b * n + i) * H + h) * D + d]!;
        }
        return result;
      };
      expectAttentionClose('dq', toBhld(await read(raw, buffers.dq, q.length), L), exactGrads.dq, sameGrads.dq, 'f32', seed);
      expectAttentionClose('dk', toBhld(await read(raw, buffers.dk, k.length), S), exactGrads.dk, sameGrads.dk, 'f32', seed);
      expectAttentionClose('dv', toBhld(await read(raw, buffers.dv, v.length), S), exactGrads.dv, sameGrads.dv, 'f32', seed);
      for (const buffer of Object.values(buffers)) buffer.destroy();
    });
  }

  it('throws typed errors for buffers that are too small and problems it cannot run', () => {
    const raw = gpu!.gpu;
    const problem = blhdProblem({ keyLengths: false, layout: { q: bhndLayout(H, L, D), k: bhndLayout(H, S, D), v: bhndLayout(H, S, D), out: bhndLayout(H, L, D) } });
    const small = raw.createBuffer({ size: 64, usage: USAGE });
    const big = raw.createBuffer({ size: 1 << 16, usage: USAGE });
    const buffers = { q: big, k: big, v: big, out: small, logsumexp: big };
    expect(() => flashAttentionForward(raw, problem, buffers)).toThrow(ShapeError);
    expect(() => flashAttentionForward(raw, problem, buffers)).toThrow(/out buffer has 64 bytes/);
    expect(() => flashAttentionForward(raw, { ...problem, headDimQk: 320 }, { ...buffers, out: big })).toThrow(InvalidArgumentError);
    expect(() => flashAttentionForward(raw, { ...problem, headDimQk: 320 }, { ...buffers, out: big })).toThrow(/head dim qk 320, need 1..256/);
    expect(() => flashAttentionForward(raw, { ...problem, keyLengths: true }, { ...buffers, out: big })).toThrow(/buffers.keyLengths/);
    small.destroy();
    big.destroy();
  });
});
