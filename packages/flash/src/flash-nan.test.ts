/**
 * NaN in the inputs, as PyTorch's flash kernels: a NaN in q row i, or in k row j that row i may attend (causal,
 * window, padding, bool mask), makes out row i and its logsumexp NaN; a NaN in v[j, d] makes out[i, d] NaN for
 * the rows i that may attend key j. Keys row i may not attend never affect it. Backward: rows with a NaN
 * logsumexp get NaN dq, keys such rows attend NaN dk and dv; a NaN in v[j] makes dq NaN for the rows that attend
 * key j and dk NaN for the keys those rows attend (through dP and delta, as PyTorch). Every other entry is finite and checked against the float64 reference of the clean inputs
 * (it does not depend on the poisoned element).
 */
import { gpu } from '../test/test-device';
import { attentionReference, attentionReferenceBackward } from '@webattn/reference';
import { tensor, type AttentionOptions } from '@webattn/tensor';
import { expectNoGpuErrors, freshSeed, randomValues } from '@webattn/tensor/testing';
import { afterAll, describe, expect, it } from 'vitest';
import { compare } from '../test/flash-harness';
import { flashAttention, flashAttentionGrad } from './flash-attention';
import { splitKvAttention } from './split-kv';

afterAll(() => gpu?.destroy());

type Poison = { readonly what: 'q' | 'k' | 'v'; readonly row: number; readonly column: number };

/** NaN exactly where `nanAt(row, column)` says (rows of `width`); the other entries finite and close. */
function checkPattern(name: string, actual: Float32Array, exact: ArrayLike<number>, same: ArrayLike<number>, width: number, nanAt: (row: number, column: number) => boolean, context: string): void {
  const picked: { actual: number[]; exact: number[]; same: number[] } = { actual: [], exact: [], same: [] };
  for (let e = 0; e < actual.length; e++) {
    const [row, column] = [Math.floor(e / width), e % width];
    const value = actual[e]!;
    if (nanAt(row, column)) {
      expect(Number.isNaN(value), `${name}[${row}, ${column}] = ${value}, should be NaN (${context})`).toBe(true);
      continue;
    }
    expect(Number.isFinite(value), `${name}[${row}, ${column}] = ${value}, should be finite (${context})`).toBe(true);
    picked.actual.push(value);
    picked.exact.push(exact[e]!);
    picked.same.push(same[e]!);
  }
  const c = compare(name, picked.actual, picked.exact, picked.same, 'f32');
  expect(c.error, `${name} error ${c.error} > ${c.allowed} at ${c.index} (${context})`).toBeLessThanOrEqual(c.allowed);
}

describe.skipIf(!gpu)('NaN inputs on flash', () => {
  const [L, S, D] = [12, 12, 16];
  // Causal top-left, and a bool mask removing key 3 from rows 7 and 9.
  const mask = Uint8Array.from({ length: L * S }, (_, e) => (Math.floor(e / S) === 7 || Math.floor(e / S) === 9) && e % S === 3 ? 0 : 1);
  const attends = (row: number, key: number) => key <= row && mask[row * S + key] === 1;
  const rowsOf = (key: number) => Array.from({ length: L }, (_, row) => row).filter((row) => attends(row, key));
  /** Where each output is NaN: out and logsumexp by (row, column), dq by row, dk and dv by key. */
  interface Expected {
    readonly out: (row: number, column: number) => boolean;
    readonly lse: (row: number) => boolean;
    readonly dq: (row: number) => boolean;
    readonly dk: (key: number) => boolean;
    readonly dv: (key: number) => boolean;
  }
  /** A NaN in q row i or k row j: every row it reaches is NaN, and so are the gradients of what those rows touch. */
  const rowsNaN = (nanRows: (row: number) => boolean): Expected => {
    const keyOfNanRow = (key: number) => rowsOf(key).some(nanRows);
    return { out: nanRows, lse: nanRows, dq: nanRows, dk: keyOfNanRow, dv: keyOfNanRow };
  };
  const cases: [Poison, Expected][] = [
    [{ what: 'q', row: 5, column: 2 }, rowsNaN((row) => row === 5)],
    [{ what: 'k', row: 6, column: 9 }, rowsNaN((row) => attends(row, 6))],
    [{ what: 'k', row: 3, column: 0 }, rowsNaN((row) => attends(row, 3))],
    // v[3, 15]: column 15 of the rows attending key 3. Their dP and delta = rowsum(dO ∘ O) are NaN, so their dq
    // and the dk of every key they attend; dv = Pᵀ dO stays finite.
    [
      { what: 'v', row: 3, column: 15 },
      {
        out: (row, column) => column === 15 && attends(row, 3),
        lse: () => false,
        dq: (row) => attends(row, 3),
        dk: (key) => rowsOf(key).some((row) => attends(row, 3)),
        dv: () => false,
      },
    ],
  ];
  for (const [poison, expected] of cases) {
    it(`${poison.what}[${poison.row}, ${poison.column}] = NaN: out, logsumexp and gradients NaN exactly where PyTorch's flash has them`, async () => {
      const device = gpu!;
      const seed = freshSeed();
      const clean = { q: randomValues(L * D, seed), k: randomValues(S * D, seed + 1), v: randomValues(S * D, seed + 2) };
      const poisoned = { ...clean, [poison.what]: clean[poison.what].slice() };
      poisoned[poison.what][poison.row * D + poison.column] = Number.NaN;
      const gradValues = randomValues(L * D, seed + 3);
      const shape = [1, 1, L, D];
      const [q, k, v, gradOut] = [poisoned.q, poisoned.k, poisoned.v, gradValues].map((values) => tensor(device, values, shape));
      const attnMask = tensor(device, mask, [L, S], { dtype: 'bool' });
      const options: AttentionOptions = { isCausal: true, attnMask };
      const result = await expectNoGpuErrors(device, () => {
        const forward = flashAttention(q!, k!, v!, options);
        return { ...forward, ...flashAttentionGrad(q!, k!, v!, forward.out, forward.logsumexp, gradOut!, options) };
      });
      const host = (data: Float32Array) => ({ data, shape });
      const referenceOptions = { isCausal: true, attnMask: { data: mask, shape: [L, S], dtype: 'bool' as const } };
      const inputs = [host(clean.q), host(clean.k), host(clean.v)] as const;
      const exact = attentionReference(...inputs, referenceOptions);
      const same = attentionReference(...inputs, { ...referenceOptions, precision: 'f32' });
      const exactGrads = attentionReferenceBackward(...inputs, host(gradValues), referenceOptions);
      const sameGrads = attentionReferenceBackward(...inputs, host(gradValues), { ...referenceOptions, precision: 'f32' });
      const context = `seed ${seed}`;
      const read = async (t: { toArray(): Promise<unknown> }) => (await t.toArray()) as Float32Array;
      checkPattern('out', await read(result.out), exact.out, same.out, D, expected.out, context);
      checkPattern('logsumexp', await read(result.logsumexp), exact.logsumexp, same.logsumexp, 1, expected.lse, context);
      checkPattern('dq', await read(result.dq), exactGrads.dq, sameGrads.dq, D, expected.dq, context);
      checkPattern('dk', await read(result.dk), exactGrads.dk, sameGrads.dk, D, expected.dk, context);
      checkPattern('dv', await read(result.dv), exactGrads.dv, sameGrads.dv, D, expected.dv, context);
      for (const t of [q!, k!, v!, gradOut!, attnMask, result.out, result.logsumexp, result.dq, result.dk, result.dv]) t.dispose();
    });
  }

  it('split-KV: a NaN key or value reaches only the rows that may attend it (a value only its column); a NaN query only its row', async () => {
    const device = gpu!;
    const seed = freshSeed();
    const [rows, keys, dim] = [2, 1100, 16];
    // Causal bottom-right: row 0 may attend keys ≤ 1098, row 1 every key.
    const options = { isCausal: true, causalAlignment: 'bottom-right' as const };
    const cases: [Poison, (row: number, column: number) => boolean, (row: number) => boolean][] = [
      [{ what: 'k', row: 1099, column: 3 }, (row) => row === 1, (row) => row === 1],
      [{ what: 'v', row: 1099, column: 7 }, (row, column) => row === 1 && column === 7, () => false],
      [{ what: 'q', row: 0, column: 5 }, (row) => row === 0, (row) => row === 0],
    ];
    for (const [poison, outNaN, lseNaN] of cases) {
      const clean = { q: randomValues(rows * dim, seed), k: randomValues(keys * dim, seed + 1), v: randomValues(keys * dim, seed + 2) };
      const poisoned = { ...clean, [poison.what]: clean[poison.what].slice() };
      poisoned[poison.what][poison.row * dim + poison.column] = Number.NaN;
      const q = tensor(device, poisoned.q, [1, 1, rows, dim]);
      const k = tensor(device, poisoned.k, [1, 1, keys, dim]);
      const v = tensor(device, poisoned.v, [1, 1, keys, dim]);
      const { out, logsumexp } = await expectNoGpuErrors(device, () => splitKvAttention(q, k, v, options));
      const inputs = [
        { data: clean.q, shape: [1, 1, rows, dim] },
        { data: clean.k, shape: [1, 1, keys, dim] },
        { data: clean.v, shape: [1, 1, keys, dim] },
      ] as const;
      const exact = attentionReference(...inputs, options);
      const same = attentionReference(...inputs, { ...options, precision: 'f32' });
      const context = `${poison.what}[${poison.row}] NaN, seed ${seed}`;
      checkPattern('out', (await out.toArray()) as Float32Array, exact.out, same.out, dim, outNaN, context);
      checkPattern('logsumexp', (await logsumexp.toArray()) as Float32Array, exact.logsumexp, same.logsumexp, 1, lseNaN, context);
      for (const t of [q, k, v, out, logsumexp]) t.dispose();
    }
  });
});
