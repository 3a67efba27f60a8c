/**
 * The dispatcher end to end on real WebGPU (and CPU tensors): the backend that runs is the one explained, every
 * call is logged, forcing and scopes restrict, typed errors, autograd through the chosen backend, dropout seeds.
 * Numerical conformance of every backend is conformance.test.ts; PyTorch goldens are torch-fixtures.test.ts.
 */
import { attentionReference, attentionReferenceBackward, type HostTensor } from '@webattn/reference';
import {
  AutogradError,
  DTypeError,
  DeviceMismatchError,
  DisposedTensorError,
  InvalidArgumentError,
  ShapeError,
  cpuDevice,
  noGrad,
  tensor,
  type Device,
  type Tensor,
} from '@webattn/tensor';
import { expectNoGpuErrors, freshSeed, maxAbsDiff, openTestDevice, randomValues } from '@webattn/tensor/testing';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { onSdpaDispatch, resetSdpaDebugLog, type SdpaDispatchEvent } from './dispatch-log';
import { NoEligibleBackendError } from './errors';
import { withSdpaBackends } from './restriction';
import { explainSdpa, scaledDotProductAttention, scaledDotProductAttentionWithWeights } from './sdpa';

const gpu = await openTestDevice();
afterAll(() => gpu?.destroy());

const events: SdpaDispatchEvent[] = [];
const stop = onSdpaDispatch((event) => events.push(event));
afterAll(stop);
afterEach(() => {
  events.length = 0;
});

interface Inputs {
  q: Tensor;
  k: Tensor;
  v: Tensor;
  host: { q: HostTensor; k: HostTensor; v: HostTensor };
  dispose(): void;
}

function inputs(device: Device, shape: { b: number; h: number; l: number; s: number; d: number }, seed: number, requiresGrad = false): Inputs {
  const qShape = [shape.b, shape.h, shape.l, shape.d];
  const kShape = [shape.b, shape.h, shape.s, shape.d];
  const values = {
    q: randomValues(qShape.reduce((a, b) => a * b), seed),
    k: randomValues(kShape.reduce((a, b) => a * b), seed + 1),
    v: randomValues(kShape.reduce((a, b) => a * b), seed + 2),
  };
  const q = tensor(device, values.q, qShape, { requiresGrad });
  const k = tensor(device, values.k, kShape, { requiresGrad });
  const v = tensor(device, values.v, kShape, { requiresGrad });
  return {
    q,
    k,
    v,
    host: { q: { data: values.q, shape: qShape }, k: { data: values.k, shape: kShape }, v: { data: values.v, shape: kShape } },
    dispose: () => [q, k, v].forEach((t) => t.dispose()),
  };
}

describe.skipIf(!gpu)('scaledDotProductAttention on WebGPU', () => {
  const device = gpu!;

  it('runs the backend explainSdpa chooses, logs it, and matches the float64 reference', async () => {
    const seed = freshSeed();
    const data = inputs(device, { b: 1, h: 2, l: 17, s: 23, d: 40 }, seed);
    const options = { isCausal: true };
    const explanation = explainSdpa(data.q, data.k, data.v, options);
    expect(events).toHaveLength(0); // explaining runs nothing and logs nothing
    const out = await expectNoGpuErrors(device, () => scaledDotProductAttention(data.q, data.k, data.v, options));
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ phase: 'forward', backend: explanation.chosen, reason: explanation.reason });
    expect(events[0]!.summary).toBe('B1 Hq2 Hkv2 L17 S23 D40/40 f32 gpu causal(top-left)');
    const expected = attentionReference(data.host.q, data.host.k, data.host.v, options);
    const diff = maxAbsDiff(await out.toArray(), expected.out);
    expect(diff.value, `seed ${seed}, backend ${explanation.chosen}`).toBeLessThan(1e-4);
    out.dispose();
    data.dispose();
  });

  it('forcing a backend that cannot run throws NoEligibleBackendError listing every rejection', () => {
    const data = inputs(device, { b: 1, h: 1, l: 4, s: 4, d: 320 }, 1);
    let error: unknown;
    try {
      scaledDotProductAttention(data.q, data.k, data.v, { backends: ['flash', 'efficient', 'cpu'] });
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(NoEligibleBackendError);
    const noEligible = error as NoEligibleBackendError;
    expect(noEligible.requested).toEqual(['flash', 'efficient', 'cpu']);
    expect(noEligible.message).toContain('no eligible backend among [flash, efficient, cpu] for B1 Hq1 Hkv1 L4 S4 D320/320 f32 gpu.');
    expect(noEligible.message).toContain('\nRejected backends:\nflash: head dim qk 320, need 1..256');
    expect(noEligible.message).toContain('\ncpu: device gpu tensors, need cpu tensors');
    const backendsMentioned = new Set(noEligible.rejections.map((item) => item.backend));
    expect([...backendsMentioned].sort()).toEqual(['cpu', 'efficient', 'flash']);
    expect(noEligible.rejections.map((item) => item.message).join('\n')).not.toContain('math');
    expect(events).toHaveLength(0);
    data.dispose();
  });

  it('withSdpaBackends restricts calls inside async functions; the per-call option replaces the scope', async () => {
    const data = inputs(device, { b: 1, h: 1, l: 5, s: 7, d: 16 }, freshSeed());
    await withSdpaBackends(['math'], async () => {
      await Promise.resolve();
      scaledDotProductAttention(data.q, data.k, data.v).dispose();
      expect(explainSdpa(data.q, data.k, data.v).backends.find((item) => item.name === 'flash')!.rejections[0]!.message).toBe(
        "flash: allowed not in [math], need 'flash' listed (restricted by the withSdpaBackends)",
      );
      scaledDotProductAttention(data.q, data.k, data.v, { backends: ['flash'] }).dispose();
    });
    expect(events.map((event) => event.backend)).toEqual(['math', 'flash']);
    expect(events[1]!.reason).toContain('forced by the backends option [flash]');
    data.dispose();
  });

  it('rejects bad arguments with typed errors before anything runs', () => {
    const data = inputs(device, { b: 1, h: 1, l: 3, s: 3, d: 8 }, 2);
    expect(() => scaledDotProductAttention(data.q, data.k, data.v, { backends: ['fast' as 'flash'] })).toThrow(InvalidArgumentError);
    expect(() => scaledDotProductAttention(data.q, data.k, data.v, { needWeights: true } as object)).toThrow(
      /call scaledDotProductAttentionWithWeights/,
    );
    expect(() => scaledDotProductAttention(data.q, data.k.transpose(2, 3), data.v)).toThrow(ShapeError);
    expect(() => scaledDotProductAttention(data.q, data.k, data.v, { dropoutP: 1 })).toThrow(InvalidArgumentError);
    expect(() => scaledDotProductAttention(data.q, data.k, data.v, { backends: [] })).toThrow(/is empty/);
    const onCpu = tensor(cpuDevice(), randomValues(24, 1), [1, 1, 3, 8]);
    expect(() => scaledDotProductAttention(data.q, onCpu, data.v)).toThrow(DeviceMismatchError);
    const boolQuery = tensor(device, new Uint8Array(24), [1, 1, 3, 8]);
    expect(() => scaledDotProductAttention(boolQuery, data.k, data.v)).toThrow(DTypeError);
    const disposed = tensor(device, randomValues(24, 2), [1, 1, 3, 8]);
    disposed.dispose();
    expect(() => scaledDotProductAttention(disposed, data.k, data.v)).toThrow(DisposedTensorError);
    expect(() => explainSdpa(data.q, data.k, data.v, { backends: ['flash', 'nope' as 'flash'] })).toThrow(InvalidArgumentError);
    expect(events).toHaveLength(0);
    [onCpu, boolQuery].forEach((t) => t.dispose());
    data.dispose();
  });

  it('needWeights runs math and says why', async () => {
    const seed = freshSeed();
    const data = inputs(device, { b: 1, h: 2, l: 6, s: 9, d: 8 }, seed);
    const { output, weights } = scaledDotProductAttentionWithWeights(data.q, data.k, data.v);
    expect(events[0]!.backend).toBe('math');
    expect(events[0]!.reason).toMatch(/^math: needWeights: only math and cpu return the attention weights; not flash: needWeights/);
    const expected = attentionReference(data.host.q, data.host.k, data.host.v, { needWeights: true });
    expect(maxAbsDiff(await weights.toArray(), expected.weights!).value, `seed ${seed}`).toBeLessThan(1e-5);
    expect(maxAbsDiff(await output.toArray(), expected.out).value, `seed ${seed}`).toBeLessThan(1e-5);
    output.dispose();
    weights.dispose();
    data.dispose();
  });

  it('backward through autograd runs on the forward backend and matches the reference gradients', async () => {
    const seed = freshSeed();
    const data = inputs(device, { b: 1, h: 2, l: 11, s: 13, d: 24 }, seed, true);
    const gradValues = randomValues(1 * 2 * 11 * 24, seed + 3);
    const gradOut = tensor(device, gradValues, [1, 2, 11, 24]);
    const out = scaledDotProductAttention(data.q, data.k, data.v, { isCausal: true, backends: ['flash'] });
    expect(out.gradFn?.name).toBe('scaledDotProductAttention(flash)');
    await expectNoGpuErrors(device, () => out.backward(gradOut));
    expect(events.map((event) => `${event.phase}:${event.backend}`)).toEqual(['forward:flash', 'backward:flash']);
    const expected = attentionReferenceBackward(data.host.q, data.host.k, data.host.v, { data: gradValues, shape: [1, 2, 11, 24] }, { isCausal: true });
    for (const [name, t, want] of [['dq', data.q, expected.dq], ['dk', data.k, expected.dk], ['dv', data.v, expected.dv]] as const) {
      expect(maxAbsDiff(await t.grad!.toArray(), want).value, `${name}, seed ${seed}`).toBeLessThan(1e-4);
    }
    out.dispose();
    gradOut.dispose();
    data.dispose();
  });

  it('dropout without a seed draws one per call and backward reuses it', async () => {
    const seed = freshSeed();
    const data = inputs(device, { b: 1, h: 1, l: 9, s: 12, d: 16 }, seed, true);
    const first = scaledDotProductAttention(data.q, data.k, data.v, { dropoutP: 0.3, backends: ['flash'] });
    const second = scaledDotProductAttention(data.q, data.k, data.v, { dropoutP: 0.3, backends: ['flash'] });
    const seeds = events.map((event) => event.problem.dropout!.seed);
    expect(seeds[0]).not.toBe(seeds[1]);
    const gradValues = randomValues(9 * 16, seed + 5);
    const gradOut = tensor(device, gradValues, [1, 1, 9, 16]);
    await expectNoGpuErrors(device, () => first.backward(gradOut));
    const options = { dropoutP: 0.3, dropoutSeed: seeds[0]!, dropoutOffset: 0 };
    const expectedOut = attentionReference(data.host.q, data.host.k, data.host.v, options);
    expect(maxAbsDiff(await first.toArray(), expectedOut.out).value, `seed ${seed}`).toBeLessThan(1e-4);
    const expected = attentionReferenceBackward(data.host.q, data.host.k, data.host.v, { data: gradValues, shape: [1, 1, 9, 16] }, options);
    expect(maxAbsDiff(await data.q.grad!.toArray(), expected.dq).value, `seed ${seed}`).toBeLessThan(1e-4);
    expect(maxAbsDiff(await data.v.grad!.toArray(), expected.dv).value, `seed ${seed}`).toBeLessThan(1e-4);
    [first, second, gradOut].forEach((t) => t.dispose());
    data.dispose();
  });

  it('split-KV has no backward: autograd runs math for it and the log says so', async () => {
    const seed = freshSeed();
    const data = inputs(device, { b: 1, h: 1, l: 2, s: 1024, d: 16 }, seed, true);
    const gradValues = randomValues(2 * 16, seed + 7);
    const gradOut = tensor(device, gradValues, [1, 1, 2, 16]);
    const out = scaledDotProductAttention(data.q, data.k, data.v, { backends: ['efficient'] });
    await expectNoGpuErrors(device, () => out.backward(gradOut));
    expect(events.map((event) => `${event.phase}:${event.backend}`)).toEqual(['forward:efficient', 'backward:math']);
    expect(events[1]!.reason).toBe('math: efficient has no backward; math computes the gradients');
    const expected = attentionReferenceBackward(data.host.q, data.host.k, data.host.v, { data: gradValues, shape: [1, 1, 2, 16] });
    expect(maxAbsDiff(await data.k.grad!.toArray(), expected.dk).value, `seed ${seed}`).toBeLessThan(1e-4);
    out.dispose();
    gradOut.dispose();
    data.dispose();
  });

  it('records no autograd node inside noGrad or when no input requires grad', () => {
    const data = inputs(device, { b: 1, h: 1, l: 3, s: 5, d: 8 }, 3, true);
    const inside = noGrad(() => scaledDotProductAttention(data.q, data.k, data.v));
    expect(inside.gradFn).toBeNull();
    expect(inside.requiresGrad).toBe(false);
    expect(events[0]!.problem.requiresGrad).toBe(false);
    const plain = inputs(device, { b: 1, h: 1, l: 3, s: 5, d: 8 }, 4);
    expect(scaledDotProductAttention(plain.q, plain.k, plain.v).gradFn).toBeNull();
    inside.dispose();
    data.dispose();
    plain.dispose();
  });
});

describe('scaledDotProductAttention on CPU tensors', () => {
  it('WEBATTN_DEBUG=sdpa prints each distinct choice once; a second backward is an AutogradError', () => {
    const info = vi.spyOn(console, 'info').mockImplementation(() => {});
    const saved = process.env.WEBATTN_DEBUG;
    process.env.WEBATTN_DEBUG = 'sdpa';
    resetSdpaDebugLog();
    try {
      const data = inputs(cpuDevice(), { b: 1, h: 1, l: 2, s: 3, d: 4 }, 5, true);
      const first = scaledDotProductAttention(data.q, data.k, data.v);
      scaledDotProductAttention(data.q, data.k, data.v).dispose();
      scaledDotProductAttention(data.q, data.k, data.v, { isCausal: true }).dispose();
      expect(info.mock.calls.map((call) => call[0])).toEqual([
        '[webattn:sdpa] forward B1 Hq1 Hkv1 L2 S3 D4/4 f32 cpu grad → cpu: cpu: the only eligible backend',
        '[webattn:sdpa] forward B1 Hq1 Hkv1 L2 S3 D4/4 f32 cpu causal(top-left) grad → cpu: cpu: the only eligible backend',
      ]);
      const gradOut = tensor(cpuDevice(), randomValues(8, 6), [1, 1, 2, 4]);
      first.backward(gradOut);
      expect(() => first.backward(gradOut)).toThrow(AutogradError);
      data.dispose();
    } finally {
      if (saved === undefined) delete process.env.WEBATTN_DEBUG;
      else process.env.WEBATTN_DEBUG = saved;
      resetSdpaDebugLog();
      info.mockRestore();
    }
  });

  it('runs the cpu backend, with autograd, and refuses GPU backends by name', async () => {
    const seed = freshSeed();
    const data = inputs(cpuDevice(), { b: 2, h: 2, l: 5, s: 7, d: 8 }, seed, true);
    const options = { isCausal: true, causalAlignment: 'bottom-right' as const };
    const out = scaledDotProductAttention(data.q, data.k, data.v, options);
    expect(events[0]).toMatchObject({ backend: 'cpu', reason: 'cpu: the only eligible backend' });
    const expected = attentionReference(data.host.q, data.host.k, data.host.v, options);
    expect(maxAbsDiff(await out.toArray(), expected.out).value, `seed ${seed}`).toBeLessThan(1e-5);
    const gradValues = randomValues(2 * 2 * 5 * 8, seed + 9);
    out.backward(tensor(cpuDevice(), gradValues, [2, 2, 5, 8]));
    expect(events[1]).toMatchObject({ phase: 'backward', backend: 'cpu' });
    const grads = attentionReferenceBackward(data.host.q, data.host.k, data.host.v, { data: gradValues, shape: [2, 2, 5, 8] }, options);
    expect(maxAbsDiff(await data.v.grad!.toArray(), grads.dv).value, `seed ${seed}`).toBeLessThan(1e-5);
    expect(() => scaledDotProductAttention(data.q, data.k, data.v, { backends: ['flash', 'math'] })).toThrow(
      /Rejected backends:\nflash: device cpu tensors, need gpu tensors \(move them with tensor.to\(gpuDevice\)\)\nmath: device cpu tensors/,
    );
    const { weights } = scaledDotProductAttentionWithWeights(data.q, data.k, data.v);
    expect(weights.shape).toEqual([2, 2, 5, 7]);
    out.dispose();
    data.dispose();
  });
});
