import { afterAll, describe, expect, it } from 'vitest';
import { ShapeError, sum, tensor, mul, type Device, type Tensor } from '@webattn/tensor';
import { expectNoGpuErrors, freshSeed, openTestDevice, randomValues } from '@webattn/tensor/testing';
import { onSdpaDispatch, withSdpaBackends, type SdpaDispatchEvent } from '@webattn/sdpa';
import { MultiheadAttention } from './multihead-attention';
import {
  decode,
  hostStateDict,
  localFixtureCases,
  maxError,
  sharedFixture,
  toTensor,
  type Fixture,
  type FixtureTensor,
} from './test-support';

const gpu = await openTestDevice();
afterAll(() => gpu?.destroy());

/** Runs fn and returns the dispatch events it caused. */
async function dispatches<T>(fn: () => Promise<T> | T): Promise<{ result: T; events: SdpaDispatchEvent[] }> {
  const events: SdpaDispatchEvent[] = [];
  const stop = onSdpaDispatch((event) => events.push(event));
  try {
    return { result: await fn(), events };
  } finally {
    stop();
  }
}

/** The shared fixtures carry the weights as inputs under PyTorch's names (out_proj_weight = out_proj.weight). */
function sharedWeights(fixture: Fixture) {
  const host = hostStateDict(fixture.inputs);
  return {
    in_proj_weight: host.in_proj_weight!,
    in_proj_bias: host.in_proj_bias!,
    'out_proj.weight': host.out_proj_weight!,
    'out_proj.bias': host.out_proj_bias!,
  };
}

async function expectClose(actual: Tensor, expected: FixtureTensor, what: string, tolerance = 1e-5) {
  expect(actual.shape).toEqual(expected.shape);
  const { error, index } = maxError(await actual.toArray(), decode(expected));
  expect(error, `${what}: max error at ${index}`).toBeLessThan(tolerance);
}

describe.skipIf(!gpu)('MultiheadAttention matches torch.nn.MultiheadAttention (shared fixtures, f32 within 1e-5)', () => {
  for (const name of ['mha_basic.json', 'mha_kpm_mask.json']) {
    // Missing ../shared skips (with a warning) outside CI and throws under CI=true.
    const fixture = sharedFixture(name);
    it.skipIf(!fixture)(name, async () => {
      if (!fixture) return;
      await expectNoGpuErrors(gpu!, async () => {
        const params = fixture.params as { embed_dim: number; num_heads: number; batch_first: boolean };
        const mha = new MultiheadAttention(gpu!, params.embed_dim, params.num_heads, { batchFirst: params.batch_first });
        mha.loadStateDict(sharedWeights(fixture));
        mha.eval();
        const input = (key: string) => (fixture.inputs[key] ? toTensor(gpu!, fixture.inputs[key]!) : null);
        const { result, events } = await dispatches(() =>
          mha.forward(input('query')!, input('key')!, input('value')!, {
            keyPaddingMask: input('key_padding_mask'),
            attnMask: input('attn_mask'),
            needWeights: true,
          }),
        );
        const expected = fixture.expected as Record<string, FixtureTensor>;
        await expectClose(result.output, expected.attn_output!, 'output');
        await expectClose(result.weights!, expected.attn_weights_avg!, 'averaged weights');
        // needWeights goes to the math backend, and the dispatch log says why.
        expect(events).toHaveLength(1);
        expect(events[0]!.backend).toBe('math');
        expect(events[0]!.reason).toMatch(/weights/i);
        if (name === 'mha_kpm_mask.json') expect(events[0]!.problem.mask.kind).toBe('bool');
      });
    });
  }
});

describe.skipIf(!gpu)('MultiheadAttention matches PyTorch on the other options (local fixtures)', () => {
  const cases = localFixtureCases().filter((c) => c.op === 'multihead_attention');
  for (const fixture of cases) {
    it(fixture.name, async () => {
      await expectNoGpuErrors(gpu!, async () => {
        const p = fixture.params as Record<string, number | boolean | undefined>;
        const mha = new MultiheadAttention(gpu!, p.embed_dim as number, p.num_heads as number, {
          batchFirst: p.batch_first as boolean,
          kdim: p.kdim as number | undefined,
          vdim: p.vdim as number | undefined,
          addBiasKV: (p.add_bias_kv as boolean) ?? false,
          addZeroAttn: (p.add_zero_attn as boolean) ?? false,
          bias: (p.bias as boolean) ?? true,
        });
        mha.loadStateDict(hostStateDict(fixture.state_dict!));
        mha.eval();
        const input = (key: string) => (fixture.inputs[key] ? toTensor(gpu!, fixture.inputs[key]!) : null);
        const causal = fixture.name.includes('causal');
        const { output, weights } = mha.forward(input('query')!, input('key')!, input('value')!, {
          keyPaddingMask: input('key_padding_mask'),
          attnMask: causal ? null : input('attn_mask'),
          isCausal: causal,
          averageAttnWeights: (p.average_attn_weights as boolean) ?? true,
        });
        const expected = fixture.expected as Record<string, FixtureTensor>;
        await expectClose(output, expected.attn_output!, 'output');
        await expectClose(weights!, expected.attn_weights!, 'weights');
      });
    });
  }
});

/** Random batch-first inputs and a model with seeded weights. */
function problem(device: Device, seed: number, options: { dropout?: number } = {}) {
  const [B, L, E, H] = [2, 9, 24, 4];
  const mha = new MultiheadAttention(device, E, H, { batchFirst: true, seed, dropout: options.dropout ?? 0 });
  const x = tensor(device, randomValues(B * L * E, seed + 1), [B, L, E]);
  const padding = new Uint8Array(B * L);
  padding.fill(1, L - 3, L); // batch 0: last three keys are padding (true = masked out)
  const keyPaddingMask = tensor(device, padding, [B, L], { dtype: 'bool' });
  return { mha, x, keyPaddingMask, B, L, E };
}

describe.skipIf(!gpu)('MultiheadAttention semantics', () => {
  it('bool keyPaddingMask true hides the key: output equals attention over the unpadded keys only', async () => {
    const seed = freshSeed();
    await expectNoGpuErrors(gpu!, async () => {
      const { mha, x, keyPaddingMask, L, E } = problem(gpu!, seed);
      mha.eval();
      const masked = mha.forward(x, x, x, { keyPaddingMask, needWeights: true });
      // Batch 0 with the last three keys removed altogether.
      const query = x.narrow(0, 0, 1);
      const keys = query.narrow(1, 0, L - 3);
      const trimmed = mha.forward(query, keys, keys, { needWeights: true });
      const full = await masked.output.narrow(0, 0, 1).toArray();
      expect(maxError(full, await trimmed.output.toArray()).error, `seed ${seed}`).toBeLessThan(1e-5);
      const weights = await masked.weights!.toArray();
      for (let row = 0; row < L; row++) {
        for (let key = L - 3; key < L; key++) expect(weights[row * L + key], `seed ${seed}`).toBe(0);
      }
      expect(E).toBe(24);
    });
  });

  it('a per-head [B·H, L, S] attnMask equals the [L, S] mask repeated; float −∞ equals bool true', async () => {
    const seed = freshSeed();
    await expectNoGpuErrors(gpu!, async () => {
      const { mha, x, L } = problem(gpu!, seed);
      mha.eval();
      const band = new Uint8Array(L * L).map((_, i) => (Math.abs(Math.floor(i / L) - (i % L)) > 2 ? 1 : 0));
      const twoD = tensor(gpu!, band, [L, L], { dtype: 'bool' });
      const perHead = new Uint8Array(2 * 4 * L * L);
      for (let i = 0; i < 8; i++) perHead.set(band, i * L * L);
      const threeD = tensor(gpu!, perHead, [8, L, L], { dtype: 'bool' });
      const additive = tensor(gpu!, Float32Array.from(band, (b) => (b ? Number.NEGATIVE_INFINITY : 0)), [L, L]);
      const a = await mha.forward(x, x, x, { attnMask: twoD }).output.toArray();
      const b = await mha.forward(x, x, x, { attnMask: threeD }).output.toArray();
      const c = await mha.forward(x, x, x, { attnMask: additive }).output.toArray();
      const none = await mha.forward(x, x, x).output.toArray();
      expect(maxError(a, b).error, `seed ${seed}`).toBeLessThan(1e-6);
      expect(maxError(a, c).error, `seed ${seed}`).toBeLessThan(1e-6);
      expect(maxError(a, none).error, 'the mask changes the result').toBeGreaterThan(1e-3);
    });
  });

  it('needWeights false lets the dispatcher choose, with the same output', async () => {
    const seed = freshSeed();
    await expectNoGpuErrors(gpu!, async () => {
      const { mha, x, keyPaddingMask } = problem(gpu!, seed);
      mha.eval();
      const withWeights = await mha.forward(x, x, x, { keyPaddingMask }).output.toArray();
      const { result, events } = await dispatches(() => mha.forward(x, x, x, { keyPaddingMask, needWeights: false }));
      expect(result.weights).toBeNull();
      expect(events[0]!.reason).not.toMatch(/needWeights/);
      expect(maxError(await result.output.toArray(), withWeights).error, `seed ${seed}`).toBeLessThan(1e-5);
    });
  });

  it('gradients agree between the flash and math backends (same weights, same inputs)', async () => {
    const seed = freshSeed();
    await expectNoGpuErrors(gpu!, async () => {
      const grads: Float32Array[][] = [];
      for (const backend of ['math', 'flash'] as const) {
        const { mha, x, keyPaddingMask } = problem(gpu!, seed);
        const direction = tensor(gpu!, randomValues(x.size, seed + 2), x.shape);
        await withSdpaBackends([backend], async () => {
          const { output } = mha.forward(x, x, x, { keyPaddingMask, needWeights: false, isCausal: true });
          sum(mul(output, direction)).backward();
        });
        grads.push(await Promise.all(mha.parameters().map(async (p) => (await p.grad!.toArray()) as Float32Array)));
      }
      grads[0]!.forEach((math, i) => {
        const { error } = maxError(grads[1]![i]!, math);
        const scale = Math.max(...math.map(Math.abs));
        expect(error, `parameter ${i}, seed ${seed}`).toBeLessThan(1e-4 * Math.max(scale, 1));
      });
    });
  });

  it('dropout is active in training and off in eval', async () => {
    const seed = freshSeed();
    await expectNoGpuErrors(gpu!, async () => {
      const { mha, x } = problem(gpu!, seed, { dropout: 0.5 });
      const a = await mha.forward(x, x, x, { needWeights: false }).output.toArray();
      const b = await mha.forward(x, x, x, { needWeights: false }).output.toArray();
      expect(maxError(a, b).error, 'two training calls draw different masks').toBeGreaterThan(1e-3);
      mha.eval();
      const c = await mha.forward(x, x, x, { needWeights: false }).output.toArray();
      const d = await mha.forward(x, x, x, { needWeights: false }).output.toArray();
      expect(maxError(c, d).error).toBe(0);
    });
  });

  it('rejects mismatched shapes with ShapeError naming the layout', () => {
    const { mha, x } = problem(gpu!, 1);
    const wrong = tensor(gpu!, randomValues(2 * 9 * 8, 3), [2, 9, 8]);
    expect(() => mha.forward(x, wrong, wrong)).toThrow(ShapeError);
    expect(() => mha.forward(x, x, x, { keyPaddingMask: tensor(gpu!, new Uint8Array(5), [1, 5], { dtype: 'bool' }) })).toThrow(
      /keyPaddingMask must be \[batch, keyLength\] = \[2, 9\]/,
    );
    expect(() => mha.forward(x, x, x, { attnMask: tensor(gpu!, new Uint8Array(4), [2, 2], { dtype: 'bool' }) })).toThrow(
      /attnMask must be \[L, S\]/,
    );
  });
});
