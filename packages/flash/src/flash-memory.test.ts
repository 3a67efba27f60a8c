/**
 * Forward + backward allocate O(B·H·L) beyond their inputs and outputs (the logsumexp, its residual and the
 * backward's delta) plus the tiled backward's stored score gradients, bounded by their budget (stored-scores.ts),
 * none with the device's budget set to 0 (setStoredScoresBudget): counted with the buffer pool's statistics at
 * L = S = 1025, where N² floats (4.2 MB per head) dwarf everything else. Backward is deterministic: the same bits
 * on every run. Calls recorded back to back before a submit share the backward's scratch (the pool's stream-ordered
 * scratch, buffer-pool.ts) and each still gets its own gradients.
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

  for (const maxFreeBytes of [undefined, 0]) {
    it(`backward calls recorded back to back share their scratch and keep their own gradients (maxFreeBytes ${maxFreeBytes ?? 'default'})`, async () => {
      const device = gpu!;
      const [B, H, N, D] = [1, 2, 301, 16];
      const options = { isCausal: true };
      const problems = [freshSeed(), freshSeed() + 100].map((seed) => {
        const [q, k, v, gradOut] = [0, 1, 2, 3].map((i) => tensor(device, randomValues(B * H * N * D, seed + i), [B, H, N, D]));
        const { out, logsumexp } = flashAttention(q!, k!, v!, options);
        return { q: q!, k: k!, v: v!, gradOut: gradOut!, out, logsumexp };
      });
      const gradients = async (grads: ReturnType<typeof flashAttentionGrad>) => {
        const arrays = await Promise.all([grads.dq.toArray(), grads.dk.toArray(), grads.dv.toArray()]);
        for (const t of [grads.dq, grads.dk, grads.dv]) t.dispose();
        return arrays.map((array) => Buffer.from(array.buffer, array.byteOffset, array.byteLength));
      };
      // Each alone (read back, so submitted, before the next).
      const alone = [];
      for (const p of problems) alone.push(await gradients(flashAttentionGrad(p.q, p.k, p.v, p.out, p.logsumexp, p.gradOut, options)));
      const savedCap = device.pool.maxFreeBytes;
      if (maxFreeBytes !== undefined) device.pool.maxFreeBytes = maxFreeBytes;
      try {
        await device.sync();
        // Both recorded before anything is read back: the second call may take the first one's scratch at once
        // (or, with no free bytes allowed, must not destroy it before the submit).
        const [first, second, grown] = await expectNoGpuErrors(device, () => {
          const a = problems[0]!;
          const b = problems[1]!;
          const first = flashAttentionGrad(a.q, a.k, a.v, a.out, a.logsumexp, a.gradOut, options);
          const before = device.pool.stats().liveBytes;
          const second = flashAttentionGrad(b.q, b.k, b.v, b.out, b.logsumexp, b.gradOut, options);
          return [first, second, device.pool.stats().liveBytes - before] as const;
        });
        const together = [await gradients(first), await gradients(second)];
        for (let p = 0; p < 2; p++) {
          for (let g = 0; g < 3; g++) expect(together[p]![g]!.equals(alone[p]![g]!), `problem ${p}, gradient ${g}`).toBe(true);
        }
        if (maxFreeBytes === undefined) {
          // The second call creates its outputs (dq, dk, dv; buckets round up by ≤ 25%) and little else.
          const outputs = 3 * B * H * N * D * 4 * 1.25;
          expect(grown, `the second call grew the pool by ${grown} B`).toBeLessThanOrEqual(outputs + 16 * 1024);
        }
      } finally {
        device.pool.maxFreeBytes = savedCap;
        for (const p of problems) for (const t of Object.values(p)) t.dispose();
      }
    });
  }
});
