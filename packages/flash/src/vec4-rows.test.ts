/**
 * f32 rows read as vec4 (vec4-loaders.ts): the tiled and compact kernels give the same bits whether they read q, k,
 * v and dO one vec4 at a time (rows at multiples of 4 elements) or element by element (the same values one element
 * further into each buffer), and match the float64 reference.
 */
import { gpu } from '../test/test-device';
import { attentionReference, attentionReferenceBackward } from '@webattn/reference';
import { expectAttentionClose } from '@webattn/reference/testing';
import { bhndLayout, type AttentionProblem } from '@webattn/tensor';
import { expectNoGpuErrors, freshSeed, randomValues } from '@webattn/tensor/testing';
import { afterAll, describe, expect, it } from 'vitest';
import { flashAttentionBackward } from './flash-backward';
import { flashAttentionForward } from './flash-forward';
import { vec4RowTensors } from './vec4-loaders';

afterAll(() => gpu?.destroy());

const USAGE = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
const [B, H, L, S, D] = [2, 3, 37, 45, 24];

function problemAt(offset: number): AttentionProblem {
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
    layout: { q: bhndLayout(H, L, D, offset), k: bhndLayout(H, S, D, offset), v: bhndLayout(H, S, D, offset), out: bhndLayout(H, L, D, offset) },
    mask: { kind: 'none' },
    keyLengths: false,
    varlen: false,
    causal: true,
    window: null,
    causalAlignment: 'top-left',
    softcap: null,
    dropout: null,
    needWeights: false,
    requiresGrad: true,
  };
}

/** `values` placed `offset` elements into a buffer whose other elements are NaN. */
function upload(device: GPUDevice, values: Float32Array, offset: number): GPUBuffer {
  const data = new Float32Array(values.length + offset + 4).fill(Number.NaN);
  data.set(values, offset);
  const buffer = device.createBuffer({ size: data.byteLength, usage: USAGE });
  device.queue.writeBuffer(buffer, 0, data);
  return buffer;
}

async function read(device: GPUDevice, buffer: GPUBuffer, offset: number, count: number): Promise<Float32Array> {
  const staging = device.createBuffer({ size: buffer.size, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const encoder = device.createCommandEncoder();
  encoder.copyBufferToBuffer(buffer, 0, staging, 0, buffer.size);
  device.queue.submit([encoder.finish()]);
  await staging.mapAsync(GPUMapMode.READ);
  const values = new Float32Array(staging.getMappedRange().slice(0)).slice(offset, offset + count);
  staging.destroy();
  return values;
}

interface Results {
  readonly out: Float32Array;
  readonly logsumexp: Float32Array;
  readonly dq: Float32Array;
  readonly dk: Float32Array;
  readonly dv: Float32Array;
}

async function run(inputs: readonly Float32Array[], offset: number, storage: number | undefined): Promise<Results> {
  const device = gpu!.gpu;
  const [q, k, v, gradOut] = inputs as [Float32Array, Float32Array, Float32Array, Float32Array];
  const nan = (count: number) => new Float32Array(count).fill(Number.NaN);
  const buffers = {
    q: upload(device, q, offset),
    k: upload(device, k, offset),
    v: upload(device, v, offset),
    out: upload(device, nan(q.length), offset),
    logsumexp: upload(device, nan(B * H * L), 0),
    gradOut: upload(device, gradOut, offset),
    dq: upload(device, nan(q.length), offset),
    dk: upload(device, nan(k.length), offset),
    dv: upload(device, nan(v.length), offset),
  };
  const options = storage ? { workgroupStorageLimit: storage } : {};
  await expectNoGpuErrors(gpu!, async () => {
    flashAttentionForward(device, problemAt(offset), buffers, options).release();
    flashAttentionBackward(device, problemAt(offset), buffers, options).release();
  });
  const results = {
    out: await read(device, buffers.out, offset, q.length),
    logsumexp: await read(device, buffers.logsumexp, 0, B * H * L),
    dq: await read(device, buffers.dq, offset, q.length),
    dk: await read(device, buffers.dk, offset, k.length),
    dv: await read(device, buffers.dv, offset, v.length),
  };
  for (const buffer of Object.values(buffers)) buffer.destroy();
  return results;
}

describe('vec4RowTensors', () => {
  it('reads f32 rows at multiples of 4 contiguous elements as vec4, nothing else', () => {
    const problem = problemAt(0);
    expect([...vec4RowTensors(problem, problem.layout.out)].sort()).toEqual(['grad_out', 'k', 'q', 'v']);
    expect([...vec4RowTensors(problem)].sort()).toEqual(['k', 'q', 'v']);
    expect(vec4RowTensors(problemAt(1), problemAt(1).layout.out).size).toBe(0);
    expect(vec4RowTensors({ ...problem, dtype: 'f16' }, problem.layout.out).size).toBe(0);
    const odd = { ...problem, headDimV: 22, layout: { ...problem.layout, v: bhndLayout(H, S, 22) } };
    expect([...vec4RowTensors(odd, bhndLayout(H, L, 22))].sort()).toEqual(['k', 'q']);
    const strided = { ...problem, layout: { ...problem.layout, k: { ...problem.layout.k, dim: 2 } } };
    expect([...vec4RowTensors(strided)].sort()).toEqual(['q', 'v']);
  });
});

describe.skipIf(!gpu)('f32 rows read as vec4', () => {
  for (const storage of [undefined, 16384]) {
    it(`give the element-wise reads' bits (workgroup storage ${storage ?? 'device limit'})`, async () => {
      const seed = freshSeed();
      const inputs = [randomValues(B * H * L * D, seed), randomValues(B * H * S * D, seed + 1), randomValues(B * H * S * D, seed + 2), randomValues(B * H * L * D, seed + 3)];
      const vec4 = await run(inputs, 0, storage);
      const elements = await run(inputs, 1, storage);
      for (const name of ['out', 'logsumexp', 'dq', 'dk', 'dv'] as const) {
        expect(vec4[name].some(Number.isNaN), `${name} (seed ${seed})`).toBe(false);
        expect(Buffer.from(vec4[name].buffer).equals(Buffer.from(elements[name].buffer)), `${name} (seed ${seed})`).toBe(true);
      }
      const host = (data: Float32Array, n: number) => ({ data, shape: [B, H, n, D], strides: [H * n * D, n * D, D, 1] });
      const [q, k, v, gradOut] = [host(inputs[0]!, L), host(inputs[1]!, S), host(inputs[2]!, S), host(inputs[3]!, L)];
      const options = { isCausal: true };
      const exact = attentionReference(q, k, v, options);
      const same = attentionReference(q, k, v, { ...options, precision: 'f32' });
      expectAttentionClose(`out (seed ${seed})`, vec4.out, exact.out, same.out, 'f32', seed);
      const exactGrads = attentionReferenceBackward(q, k, v, gradOut, options);
      const sameGrads = attentionReferenceBackward(q, k, v, gradOut, { ...options, precision: 'f32' });
      for (const name of ['dq', 'dk', 'dv'] as const) {
        expectAttentionClose(`${name} (seed ${seed})`, vec4[name], exactGrads[name], sameGrads[name], 'f32', seed);
      }
    });
  }
});
