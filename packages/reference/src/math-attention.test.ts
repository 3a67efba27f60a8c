import {
  DTypeError,
  DeviceMismatchError,
  DisposedTensorError,
  InvalidArgumentError,
  ResourceLimitError,
  ShapeError,
  cpuDevice,
  tensor,
  type Device,
} from '@webattn/tensor';
import { expectNoGpuErrors, freshSeed, openTestDevice, randomValues, relativeL2 } from '@webattn/tensor/testing';
import { afterAll, describe, expect, it } from 'vitest';
import { attentionCases } from './attention-cases';
import { caseExpectation, caseTensors, checkCaseBackward, checkCaseForward } from './attention-case-check';
import { checkMath, mathScoresBytes } from './check-math';
import { mathAttention, mathAttentionBackward } from './math-attention';
import { fixtureOptions, loadTorchSdpaFixtures } from './torch-fixtures';

const gpu = await openTestDevice();
const fixtures = await loadTorchSdpaFixtures();

/** Parks NaN-filled buffers of these sizes in the pool, so outputs that a kernel forgets to write show up. */
function poisonPool(device: Device, byteSizes: number[]): void {
  const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
  const buffers = byteSizes.map((bytes) => device.pool.acquire(bytes, usage, 'poison'));
  for (const buffer of buffers) {
    device.gpu.queue.writeBuffer(buffer, 0, new Uint8Array(buffer.size).fill(0xff));
    device.pool.release(buffer);
  }
  device.submit();
}

afterAll(() => gpu?.destroy());

describe.skipIf(!gpu)('WGSL math backend: the attention conformance suite', () => {
  const device = gpu!;
  for (const kase of attentionCases) {
    it(kase.name, async () => {
      const seed = freshSeed();
      const inputs = kase.generate(seed);
      const expected = caseExpectation(kase, inputs);
      const outCount = expected.oracle.out.length;
      const rows = expected.oracle.logsumexp.length;
      const sizes = [outCount * 4, outCount * 4, rows * 4, rows * 8, expected.oracle.out.length * 2];
      if (expected.oracleGradients) {
        for (const g of ['dq', 'dk', 'dv'] as const) sizes.push(expected.oracleGradients[g].length * 4, expected.oracleGradients[g].length * 2);
      }
      poisonPool(device, sizes);
      await expectNoGpuErrors(device, async () => {
        const t = caseTensors(device, inputs);
        const result = mathAttention(t.q, t.k, t.v, t.options);
        checkCaseForward(
          kase,
          expected,
          {
            out: await result.out.toArray(),
            logsumexp: await result.logsumexp.toArray(),
            ...(result.weights ? { weights: await result.weights.toArray() } : {}),
          },
          seed,
        );
        expect(result.out.dtype).toBe(kase.dtype);
        expect(result.weights !== undefined).toBe(inputs.options.needWeights === true);
        if (kase.backward) {
          const grads = mathAttentionBackward(t.q, t.k, t.v, result.out, result.logsumexp, t.gradOut, t.options);
          checkCaseBackward(
            kase,
            expected,
            { dq: await grads.dq.toArray(), dk: await grads.dk.toArray(), dv: await grads.dv.toArray() },
            seed,
          );
          for (const g of [grads.dq, grads.dk, grads.dv]) g.dispose();
        }
        for (const r of [result.out, result.logsumexp, result.weights]) r?.dispose();
        t.dispose();
      });
    });
  }
});

describe.skipIf(!gpu || !fixtures)('WGSL math backend against PyTorch 2.11 in f32', () => {
  const device = gpu!;
  for (const fixture of fixtures ?? []) {
    it(`${fixture.name}: within 1e-5 relative L2`, async () => {
      await expectNoGpuErrors(device, async () => {
        const make = (name: string) => {
          const host = fixture.inputs[name]!;
          return tensor(device, host.data, host.shape, { dtype: host.dtype === 'bool' ? 'bool' : 'f32' });
        };
        const [q, k, v] = [make('q'), make('k'), make('v')];
        const { attnMask: _mask, ...params } = fixtureOptions(fixture);
        const options = { ...params, ...(fixture.inputs.attn_mask ? { attnMask: make('attn_mask') } : {}) };
        const result = mathAttention(q, k, v, options);
        expect(relativeL2(await result.out.toArray(), fixture.expected.out!.data)).toBeLessThan(1e-5);
        if (fixture.expected.grad_q) {
          const gradOut = make('grad_out');
          const grads = mathAttentionBackward(q, k, v, result.out, result.logsumexp, gradOut, options);
          expect(relativeL2(await grads.dq.toArray(), fixture.expected.grad_q.data)).toBeLessThan(1e-5);
          expect(relativeL2(await grads.dk.toArray(), fixture.expected.grad_k!.data)).toBeLessThan(1e-5);
          expect(relativeL2(await grads.dv.toArray(), fixture.expected.grad_v!.data)).toBeLessThan(1e-5);
        }
      });
    });
  }
});

describe.skipIf(!gpu)('WGSL math backend: resource limits', () => {
  const device = gpu!;
  it('refuses scores larger than one storage binding with the bytes needed and the limit, and keeps the device', async () => {
    const length = 8192;
    const q = tensor(device, randomValues(length * 8, freshSeed()), [1, 1, length, 8]);
    const needed = length * length * 4;
    expect(needed).toBeGreaterThan(device.caps.maxStorageBufferBindingSize);
    let caught: unknown;
    try {
      mathAttention(q, q, q);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(ResourceLimitError);
    expect((caught as ResourceLimitError).neededBytes).toBe(needed);
    expect((caught as ResourceLimitError).limitBytes).toBe(device.caps.maxStorageBufferBindingSize);
    expect((caught as Error).message).toContain(String(needed));
    const small = tensor(device, randomValues(4 * 8, freshSeed()), [1, 1, 4, 8]);
    const result = mathAttention(small, small, small);
    expect((await result.out.toArray()).every(Number.isFinite)).toBe(true);
  });

  it('honours a memory budget, and checkMath explains both limits', () => {
    const q = tensor(device, randomValues(64 * 8, freshSeed()), [1, 1, 64, 8]);
    expect(() => mathAttention(q, q, q, {}, { memoryBudgetBytes: 4096 })).toThrow(ResourceLimitError);
    expect(() => mathAttention(q, q, q, {}, { memoryBudgetBytes: 4096 })).toThrow(/4096/);
    const problem = { batch: 1, queryHeads: 1, kvHeads: 1, queryLength: 64, keyLength: 64, headDimQk: 8, headDimV: 8, requiresGrad: false };
    expect(mathScoresBytes(problem as never)).toBe(64 * 64 * 4);
    const rejections = checkMath(problem as never, { ...device.caps, maxStorageBufferBindingSize: 1024 }, { memoryBudgetBytes: 100 });
    expect(rejections.map((r) => r.check)).toEqual(['scoresBytes', 'memoryBytes']);
    expect(rejections[0]!.message).toMatch(/math: scoresBytes 16384, need ≤ 1024/);
  });
});

describe.skipIf(!gpu)('WGSL math backend: bad input gets typed errors naming the shapes', () => {
  const device = gpu!;
  const random = (shape: number[], dtype: 'f32' | 'bool' = 'f32') =>
    tensor(device, randomValues(shape.reduce((a, b) => a * b, 1), freshSeed()), shape, { dtype });

  it('rejects masks, heads, head dims, dropout, dtypes, devices and disposed tensors', () => {
    const q = random([2, 4, 5, 8]);
    const k = random([2, 4, 7, 8]);
    expect(() => mathAttention(q, k, k, { attnMask: random([5, 6], 'bool') })).toThrow(ShapeError);
    expect(() => mathAttention(q, k, k, { attnMask: random([5, 6], 'bool') })).toThrow(/attnMask \[5, 6\]/);
    const kv3 = random([2, 3, 7, 8]);
    expect(() => mathAttention(q, kv3, kv3, { enableGqa: true })).toThrow(/Hq = 4 is not a multiple of kv heads Hkv = 3/);
    const wide = random([2, 4, 7, 16]);
    expect(() => mathAttention(q, wide, k)).toThrow(/same head dim.*k \[2, 4, 7, 16\]/);
    expect(() => mathAttention(q, k, k, { dropoutP: 1.5 })).toThrow(InvalidArgumentError);
    const flags = random([2, 4, 5, 8], 'bool');
    expect(() => mathAttention(flags, k, k)).toThrow(DTypeError);
    const onCpu = tensor(cpuDevice(), new Float32Array(2 * 4 * 7 * 8), [2, 4, 7, 8]);
    expect(() => mathAttention(q, onCpu, k)).toThrow(DeviceMismatchError);
    expect(() => mathAttention(onCpu, onCpu, onCpu)).toThrow(/use cpuAttention/);
    const gone = random([2, 4, 7, 8]);
    gone.dispose();
    expect(() => mathAttention(q, gone, k)).toThrow(DisposedTensorError);
  });

  it('checks the shapes backward receives', async () => {
    await expectNoGpuErrors(device, async () => {
      const q = random([1, 2, 5, 8]);
      const { out, logsumexp } = mathAttention(q, q, q);
      expect(() => mathAttentionBackward(q, q, q, out, logsumexp, random([1, 2, 5, 4]))).toThrow(
        /gradOut \[1, 2, 5, 4\] must have shape \[1, 2, 5, 8\]/,
      );
      expect(() => mathAttentionBackward(q, q, q, out, random([1, 2, 4]), random([1, 2, 5, 8]))).toThrow(ShapeError);
    });
  });
});
