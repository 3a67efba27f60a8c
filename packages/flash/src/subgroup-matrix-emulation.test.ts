/**
 * The emulation's rewrite (test support for the matrix kernels on lavapipe): every builtin call becomes a call on
 * pointers, and a form it does not know fails loudly instead of leaving a builtin the adapter lacks. That the
 * emulated kernels compute the right thing is checked against the references by the emulated-matrix suites.
 */
import { describe, expect, it } from 'vitest';
import { emulatedMatrixCode } from './subgroup-matrix-emulation';

const KERNEL = `enable chromium_experimental_subgroup_matrix;
diagnostic(off, chromium.subgroup_matrix_uniformity);
fn main() {
  var q_m: array<subgroup_matrix_left<f16, 16, 16>, 2>;
  for (var kk = 0u; kk < 2u; kk++) { q_m[kk] = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, row_major>(&scratch, base + kk * 16u + salt(1u + kk), STRIDE); }
  var s = subgroup_matrix_result<f32, 16, 16>();
  for (var kk = 0u; kk < 2u; kk++) { let keys = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, col_major>(&k, row + kk * 16u, HEAD_DIM); s = subgroupMatrixMultiplyAccumulate(q_m[kk], keys, s); }
  subgroupMatrixStore<row_major>(&scores, s_base + salt(tile * 2u + 64u), s, S_STRIDE);
}`;

describe('emulatedMatrixCode', () => {
  it('turns loads, products and stores into calls on pointers and defines the functions they call', () => {
    const code = emulatedMatrixCode(KERNEL);
    expect(code).not.toMatch(/subgroup_?[mM]atrix|chromium/);
    expect(code).toContain('emulated_load_scratch_row_major(&q_m[kk], base + kk * 16u + salt(1u + kk), STRIDE);');
    expect(code).toContain('var keys: EmulatedMatrix; emulated_load_k_col_major(&keys, row + kk * 16u, HEAD_DIM);');
    expect(code).toContain('emulated_multiply_accumulate(&s, &q_m[kk], &keys);');
    expect(code).toContain('emulated_store_scores_row_major(s_base + salt(tile * 2u + 64u), &s, S_STRIDE);');
    expect(code).toContain('var s = EmulatedMatrix();');
    for (const name of ['emulated_load_scratch_row_major', 'emulated_load_k_col_major', 'emulated_store_scores_row_major', 'emulated_multiply_accumulate']) {
      expect(code).toMatch(new RegExp(`fn ${name}\\(`));
    }
  });

  it('refuses a product that does not accumulate into its target and a builtin call in another form', () => {
    expect(() => emulatedMatrixCode(KERNEL.replace('s = subgroupMatrixMultiplyAccumulate(q_m[kk], keys, s)', 't = subgroupMatrixMultiplyAccumulate(q_m[kk], keys, s)'))).toThrow(
      /not its accumulator/,
    );
    expect(() => emulatedMatrixCode(KERNEL.replace('let keys = subgroupMatrixLoad', 'let keys = 2.0 * subgroupMatrixLoad'))).toThrow(/subgroupMatrixLoad call in a form/);
  });
});
