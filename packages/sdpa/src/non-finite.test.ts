/**
 * NaN and ±Inf in the inputs: the defined behaviour (docs/choosing-a-backend.md, "NaN and infinity").
 * - v: a NaN or infinity in v[j] reaches every output row that gives key j weight, on every backend (as PyTorch).
 * - q, k on cpu and math: PyTorch's result. A NaN in q row i makes row i NaN, a NaN in k row j makes every row
 *   that sees key j NaN, an infinite score turns its row NaN (∞ − ∞ in the softmax).
 * - NaN in q, k on flash: as PyTorch's flash kernels — a NaN in q row i or in a k row that row i may attend makes
 *   row i NaN (found from the score's bits: WGSL's max() may drop a NaN); without a mask that is PyTorch's
 *   pattern. Masked keys never affect a row (packages/flash/src/flash-nan.test.ts).
 * - ±Inf in q, k on flash: no promise for the affected rows, but an infinity in q row i never leaks into any
 *   other row.
 */
import { attentionReference } from '@webattn/reference';
import { cpuDevice, tensor, type Device } from '@webattn/tensor';
import { expectNoGpuErrors, freshSeed, openTestDevice, randomValues } from '@webattn/tensor/testing';
import { afterAll, describe, expect, it } from 'vitest';
import type { SdpaBackendName } from './backend';
import { scaledDotProductAttention } from './sdpa';

const gpu = await openTestDevice();
afterAll(() => gpu?.destroy());

const seed = freshSeed();
const L = 4;
const S = 5;
const D = 8;
type Poison = { what: 'q' | 'k' | 'v'; row: number; column: number; value: number };

async function run(device: Device, backend: SdpaBackendName, dtype: 'f32' | 'f16', poison: Poison) {
  const values = { q: randomValues(L * D, seed), k: randomValues(S * D, seed + 1), v: randomValues(S * D, seed + 2) };
  // Signs that make every infinite poison reach some row whatever the seed: with q[2, 0] = +∞, key 0's score is
  // +∞ only if k[0, 0] > 0 (all-negative k[:, 0] would give a row of −∞ scores, i.e. a fully masked row, out 0);
  // with k[4, 5] = −∞, row 0's score is +∞ only if q[0, 5] < 0.
  values.k[0 * D + 0] = 0.5;
  values.q[0 * D + 5] = -0.5;
  values[poison.what][poison.row * D + poison.column] = poison.value;
  const shape = (rows: number) => [1, 1, rows, D];
  const q = tensor(device, values.q, shape(L), { dtype });
  const k = tensor(device, values.k, shape(S), { dtype });
  const v = tensor(device, values.v, shape(S), { dtype });
  const out = scaledDotProductAttention(q, k, v, { backends: [backend] });
  const actual = await out.toArray();
  [q, k, v, out].forEach((t) => t.dispose());
  const oracle = attentionReference(
    { data: values.q, shape: shape(L) },
    { data: values.k, shape: shape(S) },
    { data: values.v, shape: shape(S) },
    { precision: dtype },
  ).out;
  return { actual, oracle };
}

/** Per row: the oracle's NaN/Inf pattern matches exactly and finite values are close. */
function rowMatches(actual: ArrayLike<number>, oracle: ArrayLike<number>, row: number, tolerance: number): boolean {
  for (let c = 0; c < D; c++) {
    const a = actual[row * D + c]!;
    const o = oracle[row * D + c]!;
    if (Number.isNaN(o) !== Number.isNaN(a)) return false;
    if (Number.isNaN(o)) continue;
    if (!Number.isFinite(o) || !Number.isFinite(a)) {
      if (a !== o) return false;
    } else if (Math.abs(a - o) > tolerance) return false;
  }
  return true;
}

const VALUE_POISONS: Poison[] = [
  { what: 'v', row: 2, column: 1, value: Number.NaN },
  { what: 'v', row: 3, column: 6, value: Number.POSITIVE_INFINITY },
];
const QUERY_KEY_POISONS: Poison[] = [
  { what: 'q', row: 1, column: 3, value: Number.NaN },
  { what: 'q', row: 2, column: 0, value: Number.POSITIVE_INFINITY },
  { what: 'k', row: 2, column: 1, value: Number.NaN },
  { what: 'k', row: 4, column: 5, value: Number.NEGATIVE_INFINITY },
];
const label = (p: Poison) => `${p.what}[${p.row}, ${p.column}] = ${p.value}`;
const tolerance = (dtype: 'f32' | 'f16') => (dtype === 'f16' ? 4e-3 : 2e-6);

describe.skipIf(!gpu)('NaN and infinity on the WGSL backends', () => {
  const device = gpu!;
  for (const dtype of ['f32', 'f16'] as const) {
    it(`math ${dtype}: q, k and v poisons give PyTorch's NaN pattern`, async () => {
      await expectNoGpuErrors(device, async () => {
        for (const poison of [...VALUE_POISONS, ...QUERY_KEY_POISONS]) {
          const { actual, oracle } = await run(device, 'math', dtype, poison);
          for (let row = 0; row < L; row++) {
            expect(rowMatches(actual, oracle, row, tolerance(dtype)), `${label(poison)}, row ${row} (seed ${seed})`).toBe(true);
          }
        }
      });
    });

    it(`flash ${dtype}: NaN in q, k, v and Inf in v give PyTorch's pattern; Inf in q stays in its row`, async () => {
      await expectNoGpuErrors(device, async () => {
        for (const poison of [...VALUE_POISONS, ...QUERY_KEY_POISONS.filter((p) => Number.isNaN(p.value))]) {
          const { actual, oracle } = await run(device, 'flash', dtype, poison);
          for (let row = 0; row < L; row++) {
            expect(rowMatches(actual, oracle, row, tolerance(dtype)), `${label(poison)}, row ${row} (seed ${seed})`).toBe(true);
          }
        }
        for (const poison of QUERY_KEY_POISONS.filter((p) => p.what === 'q' && !Number.isNaN(p.value))) {
          const { actual, oracle } = await run(device, 'flash', dtype, poison);
          for (let row = 0; row < L; row++) {
            if (row === poison.row) continue;
            expect(rowMatches(actual, oracle, row, tolerance(dtype)), `${label(poison)}, row ${row} (seed ${seed})`).toBe(true);
          }
        }
      });
    });
  }
});

describe('NaN and infinity on the cpu backend', () => {
  for (const dtype of ['f32', 'f16'] as const) {
    it(`${dtype}: q, k and v poisons give PyTorch's NaN pattern`, async () => {
      for (const poison of [...VALUE_POISONS, ...QUERY_KEY_POISONS]) {
        const { actual, oracle } = await run(cpuDevice(), 'cpu', dtype, poison);
        expect(Array.from(oracle).some((x) => !Number.isFinite(x)), `${label(poison)} poisons the oracle`).toBe(true);
        for (let row = 0; row < L; row++) {
          expect(rowMatches(actual, oracle, row, tolerance(dtype)), `${label(poison)}, row ${row} (seed ${seed})`).toBe(true);
        }
      }
    });
  }
});
