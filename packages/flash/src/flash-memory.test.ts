/**
 * Forward + backward allocate O(B·H·L) beyond their inputs and outputs (the logsumexp, its residual and the
 * backward's delta) plus the tiled backward's stored score gradients, bounded by their budget (stored-scores.ts),
 * none with the device's budget set to 0 (setStoredScoresBudget): counted with the buffer pool's statistics at
 * L = S = 1025, where N² floats (4.2 MB per head) dwarf everything else. Backward is deterministic: the same bits
 * on every run.
 */
import { gpu } from '../test/test-device';
import { InvalidArgumentError, createDevice, describeAttention, tensor } from '@webattn/tensor';
import { expectNoGpuErrors, freshSeed, randomValues } from '@webattn/tensor/testing';
import { afterAll, describe, expect, it } from 'vitest';
import { flashAttention, flashAttentionGrad } from './flash-attention';
import { recordingTiles } from './flash-tiles';
import { STORED_SCORES_BYTES, planStoredScores, setStoredScoresBudget } from './stored-scores';

afterAll(() => gpu?.destroy());

describe('setStoredScoresBudget', () => {
  it('takes a whole number of bytes ≥ 0, or undefined for the default, and names a bad value', async () => {
    const cpu = await createDevice({ prefer: 'cpu' });
    for (const bad of [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(() => setStoredScoresBudget(cpu, bad)).toThrow(InvalidArgumentError);
      expect(() => setStoredScoresBudget(cpu, bad)).toThrow(`got ${bad}`);
    }
    expect(() => setStoredScoresBudget(cpu, 0)).not.toThrow();
    expect(() => setStoredScoresBudget(cpu, undefined)).not.toThrow();
    cpu.destroy();
  });
});

describe.skipIf(!gpu)('flash memory and determinism', () => {
  for (const budget of [undefined, 0]) {
    it(`needs O(B·H·L) extra memory for forward + backward at L = S = 1025, plus the stored score gradients (budget ${budget ?? 'default'})`, async () => {
      const device = gpu!;
      setStoredScoresBudget(device, budget);
      const [B, H, N, D] = [1, 2, 1025, 8];
      const seed = freshSeed();
      const q = tensor(device, randomValues(B * H * N * D, seed), [B, H, N, D]);
      const k = tensor(device, randomValues(B * H * N * D, seed + 1), [B, H, N, D]);
      const v = tensor(device, randomValues(B * H * N * D, seed + 2), [B, H, N, D]);
      const gradOut = tensor(device, randomValues(B * H * N * D, seed + 3), [B, H, N, D]);
      await device.sync();
      device.pool.trim(); // nothing free to reuse: every buffer the passes need is created and counted
      const before = device.pool.stats().liveBytes;
      const { out, logsumexp, dq, dk, dv } = await expectNoGpuErrors(device, () => {
        const forward = flashAttention(q, k, v, { isCausal: true });
        const grads = flashAttentionGrad(q, k, v, forward.out, forward.logsumexp, gradOut, { isCausal: true });
        return { ...forward, ...grads };
      });
      const grown = device.pool.stats().liveBytes - before;
      const outputs = 4 * (4 * B * H * N * D) * 1.25; // out, dq, dk, dv (pool buckets round up by ≤ 25%)
      const rows = B * H * N * 4;
      // The tiled backward's scores: one slot of (padded) keys × rows per head, within the budget.
      const problem = describeAttention(q, k, v, { isCausal: true, requiresGrad: true });
      const tiles = recordingTiles(device.gpu, problem, device.caps)!;
      const stored = tiles.tiledKeyValue ? planStoredScores(problem, tiles.headDimQk, tiles.tiledKeyValue, device.caps, budget ?? STORED_SCORES_BYTES) : null;
      if (budget === 0) expect(stored).toBeNull();
      const scores = stored ? stored.bytes * 1.25 : 0;
      expect(scores).toBeLessThanOrEqual(STORED_SCORES_BYTES * 1.25);
      const allowed = outputs + 4 * rows * 1.25 + scores + 16 * 1024; // logsumexp + residual + delta, scores, uniform buffers
      expect(grown, 'the outputs themselves must show up in the count').toBeGreaterThanOrEqual(outputs / 1.25);
      expect(grown, `grew ${grown} B, allowed ${allowed} B`).toBeLessThanOrEqual(allowed);
      if (!stored) expect(grown).toBeLessThan((B * H * N * N * 4) / 8);
      for (const t of [q, k, v, gradOut, out, logsumexp, dq, dk, dv]) t.dispose();
      setStoredScoresBudget(device, undefined);
    });
  }

  it('backward gives the same bits on every run (GQA, dropout, causal)', async () => {
    const device = gpu!;
    const [B, Hq, Hkv, L, S, D] = [2, 4, 2, 37, 53, 24];
    const seed = freshSeed();
    const q = tensor(device, randomValues(B * Hq * L * D, seed), [B, Hq, L, D]);
    const k = tensor(device, randomValues(B * Hkv * S * D, seed + 1), [B, Hkv, S, D]);
    const v = tensor(device, randomValues(B * Hkv * S * D, seed + 2), [B, Hkv, S, D]);
    const gradOut = tensor(device, randomValues(B * Hq * L * D, seed + 3), [B, Hq, L, D]);
    const options = { enableGqa: true, isCausal: true, dropoutP: 0.2, dropoutSeed: seed };
    const { out, logsumexp } = flashAttention(q, k, v, options);
    const runs = [];
    for (let run = 0; run < 2; run++) {
      const grads = await expectNoGpuErrors(device, () => flashAttentionGrad(q, k, v, out, logsumexp, gradOut, options));
      runs.push(await Promise.all([grads.dq.toArray(), grads.dk.toArray(), grads.dv.toArray()]));
      for (const t of [grads.dq, grads.dk, grads.dv]) t.dispose();
    }
    for (let g = 0; g < 3; g++) {
      const [first, second] = [runs[0]![g]!, runs[1]![g]!];
      expect(Buffer.from(first.buffer, first.byteOffset, first.byteLength).equals(Buffer.from(second.buffer, second.byteOffset, second.byteLength)), `gradient ${g}, seed ${seed}`).toBe(true);
    }
    for (const t of [q, k, v, gradOut, out, logsumexp]) t.dispose();
  });
});
