import { afterAll, describe, expect, it } from 'vitest';
import { cpuDevice, mul, sum, tensor, type Device } from '@webattn/tensor';
import { expectNoGpuErrors, freshSeed, openTestDevice, randomValues } from '@webattn/tensor/testing';
import { GELU, ReLU } from './activation';
import { Dropout } from './dropout';
import { Embedding } from './embedding';
import { LayerNorm } from './layer-norm';
import { Linear } from './linear';
import { MultiheadAttention } from './multihead-attention';
import { Sequential } from './sequential';
import { maxError } from './test-support';
import { loadJsonWeights, saveJsonWeights, stateDictFromJson } from './weights-io';

const gpu = await openTestDevice();
afterAll(() => gpu?.destroy());

const devices: [string, Device | null][] = [
  ['gpu', gpu],
  ['cpu', cpuDevice('layer tests')],
];

for (const [where, device] of devices) {
  const run = (fn: () => Promise<void>) => (device!.isGpu ? expectNoGpuErrors(device!, fn) : fn());

  describe.skipIf(!device)(`layers (${where})`, () => {
    it('Linear computes x·Wᵀ + b over the last dim of a rank-3 input (float64 check)', async () => {
      const seed = freshSeed();
      await run(async () => {
        const layer = new Linear(device!, 5, 3, { seed });
        const x = randomValues(2 * 4 * 5, seed + 1);
        const out = await layer.forward(tensor(device!, x, [2, 4, 5])).toArray();
        const w = await layer.weight.toArray();
        const b = await layer.bias!.toArray();
        const expected = new Float64Array(2 * 4 * 3);
        for (let row = 0; row < 8; row++) {
          for (let o = 0; o < 3; o++) {
            let acc = b[o]!;
            for (let i = 0; i < 5; i++) acc += x[row * 5 + i]! * w[o * 5 + i]!;
            expected[row * 3 + o] = acc;
          }
        }
        expect(maxError(out, expected).error, `seed ${seed}`).toBeLessThan(1e-5);
      });
    });

    it('Sequential(Linear, ReLU, Dropout(eval), Linear, GELU) chains and backpropagates to every parameter', async () => {
      const seed = freshSeed();
      await run(async () => {
        const model = new Sequential(
          device!,
          new Linear(device!, 6, 8, { seed }),
          new ReLU(device!),
          new Dropout(device!, 0.3),
          new Linear(device!, 8, 2, { seed: seed + 1 }),
          new GELU(device!),
        ).eval();
        const out = model.forward(tensor(device!, randomValues(4 * 6, seed + 2), [4, 6]));
        expect(out.shape).toEqual([4, 2]);
        sum(out).backward();
        for (const [name, parameter] of model.namedParameters()) {
          expect(parameter.grad, name).not.toBeNull();
          expect(parameter.grad!.shape, name).toEqual(parameter.shape);
        }
      });
    });

    it('LayerNorm normalises the last dim (mean 0, variance 1 before the affine)', async () => {
      const seed = freshSeed();
      await run(async () => {
        const norm = new LayerNorm(device!, 16);
        const out = await norm.forward(tensor(device!, randomValues(3 * 16, seed, -4, 9), [3, 16])).toArray();
        for (let row = 0; row < 3; row++) {
          const values = Array.from(out.slice(row * 16, row * 16 + 16));
          const mean = values.reduce((a, b) => a + b, 0) / 16;
          const variance = values.reduce((a, b) => a + (b - mean) ** 2, 0) / 16;
          expect(Math.abs(mean), `seed ${seed}`).toBeLessThan(1e-5);
          expect(Math.abs(variance - 1), `seed ${seed}`).toBeLessThan(1e-3);
        }
      });
    });

    it('Embedding returns weight rows and sends gradients to the rows used', async () => {
      const seed = freshSeed();
      await run(async () => {
        const embedding = new Embedding(device!, 5, 3, { seed });
        const out = embedding.forward([4, 0, 4], [1, 3]);
        expect(out.shape).toEqual([1, 3, 3]);
        const weight = await embedding.weight.toArray();
        expect(Array.from(await out.toArray())).toEqual([...weight.slice(12, 15), ...weight.slice(0, 3), ...weight.slice(12, 15)]);
        sum(out).backward();
        expect(Array.from(await embedding.weight.grad!.toArray())).toEqual([1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 2]);
        expect(() => embedding.forward([5])).toThrow(/outside 0..4/);
      });
    });

    it('MultiheadAttention accepts unbatched [L, E] inputs like PyTorch', async () => {
      const seed = freshSeed();
      await run(async () => {
        const mha = new MultiheadAttention(device!, 8, 2, { seed }).eval();
        const values = randomValues(5 * 8, seed + 1);
        const unbatched = mha.forward(tensor(device!, values, [5, 8]), tensor(device!, values, [5, 8]), tensor(device!, values, [5, 8]));
        const batched = mha.forward(tensor(device!, values, [5, 1, 8]), tensor(device!, values, [5, 1, 8]), tensor(device!, values, [5, 1, 8]));
        expect(unbatched.output.shape).toEqual([5, 8]);
        expect(unbatched.weights!.shape).toEqual([5, 5]);
        expect(maxError(await unbatched.output.toArray(), await batched.output.toArray()).error, `seed ${seed}`).toBeLessThan(1e-6);
      });
    });

    it('Dropout zeroes about p of the values and scales the rest by 1/(1−p) in training; identity in eval', async () => {
      const seed = freshSeed();
      await run(async () => {
        const layer = new Dropout(device!, 0.25, { seed });
        const x = tensor(device!, new Float32Array(4000).fill(2), [40, 100]);
        const out = await layer.forward(x).toArray();
        const zeros = out.filter((v) => v === 0).length;
        expect(zeros / 4000, `seed ${seed}`).toBeGreaterThan(0.2);
        expect(zeros / 4000, `seed ${seed}`).toBeLessThan(0.3);
        expect(out.every((v) => v === 0 || Math.abs(v - 2 / 0.75) < 1e-6)).toBe(true);
        layer.eval();
        expect(layer.forward(x)).toBe(x);
      });
    });

    it('MultiheadAttention gradients match central differences (in_proj_weight, out_proj.bias, bias_k)', async () => {
      const seed = freshSeed();
      await run(async () => {
        const mha = new MultiheadAttention(device!, 4, 2, { batchFirst: true, seed, addBiasKV: true }).eval();
        const x = tensor(device!, randomValues(2 * 3 * 4, seed + 1), [2, 3, 4]);
        const direction = tensor(device!, randomValues(2 * 3 * 4, seed + 2), [2, 3, 4]);
        const objective = async () => (await sum(mul(mha.forward(x, x, x, { needWeights: false, isCausal: true }).output, direction)).toArray())[0]!;
        sum(mul(mha.forward(x, x, x, { needWeights: false, isCausal: true }).output, direction)).backward();
        for (const name of ['in_proj_weight', 'out_proj.bias', 'bias_k']) {
          const parameter = mha.stateDict()[name]!;
          const analytic = await parameter.grad!.toArray();
          const values = Float32Array.from(await parameter.toArray());
          for (const index of [0, Math.floor(values.length / 2), values.length - 1]) {
            const original = values[index]!;
            const h = 1e-2;
            values[index] = original + h;
            mha.loadStateDict({ [name]: { shape: parameter.shape, data: values } }, { strict: false });
            const plus = await objective();
            values[index] = original - h;
            mha.loadStateDict({ [name]: { shape: parameter.shape, data: values } }, { strict: false });
            const minus = await objective();
            values[index] = original;
            mha.loadStateDict({ [name]: { shape: parameter.shape, data: values } }, { strict: false });
            const numeric = (plus - minus) / (2 * h);
            expect(Math.abs(numeric - analytic[index]!), `${name}[${index}] seed ${seed}`).toBeLessThan(2e-3 + 1e-2 * Math.abs(numeric));
          }
        }
      });
    });

    it('JSON weights round-trip (numbers and base64 forms)', async () => {
      const seed = freshSeed();
      await run(async () => {
        const a = new Linear(device!, 4, 3, { seed });
        const b = new Linear(device!, 4, 3, { seed: seed + 1 });
        loadJsonWeights(b, await saveJsonWeights(a));
        expect(Array.from(await b.weight.toArray())).toEqual(Array.from(await a.weight.toArray()));
        const bias = new Float64Array([0.5, -1.25, 3]);
        const host = stateDictFromJson({ bias: { shape: [3], dtype: 'f64', b64: Buffer.from(bias.buffer).toString('base64') } });
        expect(Array.from(host.bias!.data)).toEqual([0.5, -1.25, 3]);
        expect(() => stateDictFromJson({ bias: { shape: [4], data: [1, 2] } })).toThrow(/2 values for shape \[4\]/);
      });
    });
  });
}
