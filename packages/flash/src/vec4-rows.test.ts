/**
 * Rows read as vec4 (vec4-loaders.ts), f32 and f16: the tiled and compact kernels give the same bits whether they
 * read q, k, v, dO and out (the delta) one vec4 at a time (rows at multiples of 4 elements) or element by element
 * (the same values one element further into each buffer), and match the float64 reference.
 */
import { expectSameBits } from '../test/chunked-runs';
import { gpu } from '../test/test-device';
import { testProblem } from '../test/test-problem';
import { attentionReference, attentionReferenceBackward } from '@webattn/reference';
import { expectAttentionClose } from '@webattn/reference/testing';
import { bhndLayout, fromHalfBits, roundToHalf, toHalfBits, type AttentionProblem } from '@webattn/tensor';
import { expectNoGpuErrors, freshSeed, randomValues } from '@webattn/tensor/testing';
import { afterAll, describe, expect, it } from 'vitest';
import { flashAttentionBackward } from './flash-backward';
import { flashAttentionForward } from './flash-forward';
import { vec4RowTensors } from './vec4-loaders';

afterAll(() => gpu?.destroy());

const USAGE = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
const [B, H, L, S, D] = [2, 3, 37, 45, 24];

type Dtype = 'f32' | 'f16';

function problemAt(offset: number, dtype: Dtype = 'f32'): AttentionProblem {
  const layout = { q: bhndLayout(H, L, D, offset), k: bhndLayout(H, S, D, offset), v: bhndLayout(H, S, D, offset), out: bhndLayout(H, L, D, offset) };
  const shape = { batch: B, queryHeads: H, kvHeads: H, queryLength: L, keyLength: S, headDimQk: D, headDimV: D, dtype, scale: 1 / Math.sqrt(D), layout };
  return testProblem(shape, { causal: true, requiresGrad: true });
}

/** `values` in `dtype` placed `offset` elements into a buffer whose other elements are NaN. */
function upload(device: GPUDevice, values: Float32Array, offset: number, dtype: Dtype): GPUBuffer {
  // Whole 4-byte words, with room past the values.
  const count = Math.ceil((values.length + offset + 4) / 2) * 2;
  const data = dtype === 'f32' ? new Float32Array(count).fill(Number.NaN) : new Uint16Array(count).fill(toHalfBits(Number.NaN));
  if (data instanceof Float32Array) data.set(values, offset);
  else data.set(Uint16Array.from(values, toHalfBits), offset);
  const buffer = device.createBuffer({ size: data.byteLength, usage: USAGE });
  device.queue.writeBuffer(buffer, 0, data);
  return buffer;
}

/** `count` elements of `dtype` from `offset` on, as f32 values. */
async function read(device: GPUDevice, buffer: GPUBuffer, offset: number, count: number, dtype: Dtype): Promise<Float32Array> {
  const staging = device.createBuffer({ size: buffer.size, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const encoder = device.createCommandEncoder();
  encoder.copyBufferToBuffer(buffer, 0, staging, 0, buffer.size);
  device.queue.submit([encoder.finish()]);
  await staging.mapAsync(GPUMapMode.READ);
  const mapped = staging.getMappedRange().slice(0);
  staging.destroy();
  if (dtype === 'f32') return new Float32Array(mapped).slice(offset, offset + count);
  return Float32Array.from(new Uint16Array(mapped).slice(offset, offset + count), fromHalfBits);
}

type Output = 'out' | 'logsumexp' | 'dq' | 'dk' | 'dv';
type Results = Record<Output, Float32Array>;

async function run(inputs: readonly Float32Array[], offset: number, storage: number | undefined, dtype: Dtype): Promise<Results> {
  const device = gpu!.gpu;
  const [q, k, v, gradOut] = inputs as [Float32Array, Float32Array, Float32Array, Float32Array];
  const nan = (count: number) => new Float32Array(count).fill(Number.NaN);
  const buffers = {
    q: upload(device, q, offset, dtype),
    k: upload(device, k, offset, dtype),
    v: upload(device, v, offset, dtype),
    out: upload(device, nan(q.length), offset, dtype),
    logsumexp: upload(device, nan(B * H * L), 0, 'f32'),
    gradOut: upload(device, gradOut, offset, dtype),
    dq: upload(device, nan(q.length), offset, dtype),
    dk: upload(device, nan(k.length), offset, dtype),
    dv: upload(device, nan(v.length), offset, dtype),
  };
  const options = storage ? { workgroupStorageLimit: storage } : {};
  await expectNoGpuErrors(gpu!, async () => {
    flashAttentionForward(device, problemAt(offset, dtype), buffers, options).release();
    flashAttentionBackward(device, problemAt(offset, dtype), buffers, options).release();
  });
  const results = {
    out: await read(device, buffers.out, offset, q.length, dtype),
    logsumexp: await read(device, buffers.logsumexp, 0, B * H * L, 'f32'),
    dq: await read(device, buffers.dq, offset, q.length, dtype),
    dk: await read(device, buffers.dk, offset, k.length, dtype),
    dv: await read(device, buffers.dv, offset, v.length, dtype),
  };
  for (const buffer of Object.values(buffers)) buffer.destroy();
  return results;
}

describe('vec4RowTensors', () => {
  it('reads rows at multiples of 4 contiguous elements as vec4, f32 and f16, nothing else', () => {
    const problem = problemAt(0);
    expect([...vec4RowTensors(problem, problem.layout.out)].sort()).toEqual(['grad_out', 'k', 'out', 'q', 'v']);
    expect([...vec4RowTensors(problem)].sort()).toEqual(['k', 'out', 'q', 'v']);
    expect(vec4RowTensors(problemAt(1), problemAt(1).layout.out).size).toBe(0);
    expect([...vec4RowTensors(problemAt(0, 'f16'), problem.layout.out)].sort()).toEqual(['grad_out', 'k', 'out', 'q', 'v']);
    expect(vec4RowTensors(problemAt(2, 'f16'), problemAt(2).layout.out).size).toBe(0);
    const odd = { ...problem, headDimV: 22, layout: { ...problem.layout, v: bhndLayout(H, S, 22) } };
    expect([...vec4RowTensors(odd, bhndLayout(H, L, 22))].sort()).toEqual(['k', 'q']);
    const strided = { ...problem, layout: { ...problem.layout, k: { ...problem.layout.k, dim: 2 } } };
    expect([...vec4RowTensors(strided)].sort()).toEqual(['out', 'q', 'v']);
  });
});

const dtypes: Dtype[] = gpu?.caps.shaderF16 ? ['f32', 'f16'] : ['f32'];

describe.skipIf(!gpu)('rows read as vec4', () => {
  for (const dtype of dtypes) {
    for (const storage of [undefined, 16384]) {
      it(`give the element-wise reads' bits, ${dtype} (workgroup storage ${storage ?? 'device limit'})`, async () => {
        const seed = freshSeed();
        const draw = (count: number, offset: number) => {
          const values = randomValues(count, seed + offset);
          return dtype === 'f16' ? values.map(roundToHalf) : values;
        };
        const inputs = [draw(B * H * L * D, 0), draw(B * H * S * D, 1), draw(B * H * S * D, 2), draw(B * H * L * D, 3)];
        const vec4 = await run(inputs, 0, storage, dtype);
        const elements = await run(inputs, 1, storage, dtype);
        // No NaN, so equal f32 values are equal f16 bits too.
        for (const name of ['out', 'logsumexp', 'dq', 'dk', 'dv'] as const) {
          expect(vec4[name].some(Number.isNaN), `${name} (seed ${seed})`).toBe(false);
          expectSameBits(name, vec4[name], elements[name], `vec4 against element-wise reads, ${dtype}, seed ${seed}`);
        }
        const host = (data: Float32Array, n: number) => ({ data, shape: [B, H, n, D], strides: [H * n * D, n * D, D, 1] });
        const [q, k, v, gradOut] = [host(inputs[0]!, L), host(inputs[1]!, S), host(inputs[2]!, S), host(inputs[3]!, L)];
        const options = { isCausal: true };
        const exact = attentionReference(q, k, v, options);
        const same = attentionReference(q, k, v, { ...options, precision: dtype });
        expectAttentionClose(`out (seed ${seed})`, vec4.out, exact.out, same.out, dtype, seed);
        const exactGrads = attentionReferenceBackward(q, k, v, gradOut, options);
        const sameGrads = attentionReferenceBackward(q, k, v, gradOut, { ...options, precision: dtype });
        for (const name of ['dq', 'dk', 'dv'] as const) {
          expectAttentionClose(`${name} (seed ${seed})`, vec4[name], exactGrads[name], sameGrads[name], dtype, seed);
        }
      });
    }
  }
});
