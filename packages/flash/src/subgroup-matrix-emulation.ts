import type { FlashCaps } from './flash-tiles';

/**
 * Testing: the subgroup-matrix forward with its matrix builtins emulated in plain WGSL, so that its indexing,
 * barriers, lazy rescaling, masks and dropout are tested on adapters without subgroup matrices (lavapipe in CI).
 * The real builtins are checked on the GPU machine (scripts/gpu-check.ts).
 */
const EMULATED = new WeakSet<GPUDevice>();

/** From now on, flash runs on `gpu` as if it had 16×16×16 f16→f32 subgroup matrices, emulated (slow). */
export function emulateSubgroupMatrices(gpu: GPUDevice): void {
  EMULATED.add(gpu);
}

export function subgroupMatricesEmulated(gpu: GPUDevice): boolean {
  return EMULATED.has(gpu);
}

/** Caps as if the device had 16×16×16 f16→f32 subgroup matrices and 32-wide subgroups. */
export function withEmulatedMatrices(caps: FlashCaps): FlashCaps {
  return {
    ...caps,
    subgroups: true,
    subgroupMatrix: true,
    subgroupMatrixConfigs: [{ componentType: 'f16', resultComponentType: 'f32', M: 16, N: 16, K: 16 }],
    subgroupMinSize: 32,
    subgroupMaxSize: 32,
  };
}

/**
 * Rewrites a flash kernel that uses chromium_experimental_subgroup_matrix (16×16 matrices only) into plain WGSL in which
 * every invocation holds whole matrices: loads read all 256 elements, stores write them all (every lane of a
 * subgroup the same values), multiply-accumulate runs the 16×16×16 product in f32.
 *
 * The builtins' calls become calls on pointers (`let x = load(..)` → `var x: EmulatedMatrix; load(&x, ..)`,
 * `c = multiplyAccumulate(a, b, c)` → `multiply_accumulate(&c, &a, &b)`, stores take `&m`): passed by value, each
 * call copied 256-element arrays in and out, and lavapipe spent most of a cold compile on those copies.
 */
export function emulatedMatrixCode(code: string): string {
  // The buffers loaded from and stored to, as the rewrite meets them: each gets its own emulated functions.
  const loads = new Set<string>();
  const stores = new Set<string>();
  const matrix = String.raw`\w+(?:\[[^\];]*\])?`;
  const rewritten = code
    .replace(/^enable chromium_experimental_subgroup_matrix;$/m, '')
    .replace(/^diagnostic\(off, chromium\.subgroup_matrix_uniformity\);$/m, '')
    .replace(
      new RegExp(String.raw`(?:let (\w+)|(${matrix})) = subgroupMatrixLoad<subgroup_matrix_\w+<[^>]*>, (row_major|col_major)>\(&(\w+), ([^;]*)\);`, 'g'),
      (_, name: string | undefined, target: string | undefined, major: string, buffer: string, args: string) => {
        loads.add(buffer);
        return name ? `var ${name}: EmulatedMatrix; emulated_load_${buffer}_${major}(&${name}, ${args});` : `emulated_load_${buffer}_${major}(&${target}, ${args});`;
      },
    )
    .replace(
      new RegExp(String.raw`subgroupMatrixStore<(row_major|col_major)>\(&(\w+), ([^;]*?), (${matrix}), (\w+)\);`, 'g'),
      (_, major: string, buffer: string, offset: string, source: string, stride: string) => {
        stores.add(buffer);
        return `emulated_store_${buffer}_${major}(${offset}, &${source}, ${stride});`;
      },
    )
    .replace(new RegExp(String.raw`(${matrix}) = subgroupMatrixMultiplyAccumulate\((${matrix}), (${matrix}), (${matrix})\);`, 'g'), (statement, target: string, a: string, b: string, c: string) => {
      if (c !== target) throw new Error(`emulatedMatrixCode: the result of ${statement} is not its accumulator`);
      return `emulated_multiply_accumulate(&${target}, &${a}, &${b});`;
    })
    .replace(/subgroup_matrix_(left|right|result)<[^>]*>/g, 'EmulatedMatrix');
  const unconverted = rewritten.match(/subgroupMatrix\w+/);
  if (unconverted) throw new Error(`emulatedMatrixCode: a ${unconverted[0]} call in a form it does not rewrite`);
  const index = (major: string) => (major === 'row_major' ? 'offset + r * stride + c' : 'offset + c * stride + r');
  const loop = (variable: string, body: string) => `for (var ${variable} = 0u; ${variable} < 16u; ${variable}++) {\n${body}\n}`;
  const pointer = 'ptr<function, EmulatedMatrix>';
  const functions = [
    'struct EmulatedMatrix { e: array<f32, 256> }',
    `fn emulated_multiply_accumulate(c: ${pointer}, a: ${pointer}, b: ${pointer}) {
  ${loop('r', loop('col', `var sum = 0.0;\n${loop('k', 'sum += (*a).e[r * 16u + k] * (*b).e[k * 16u + col];')}\n(*c).e[r * 16u + col] += sum;`))}
}`,
    ...[...loads].flatMap((name) =>
      ['row_major', 'col_major'].map(
        (major) => `fn emulated_load_${name}_${major}(m: ${pointer}, offset: u32, stride: u32) {
  ${loop('r', loop('c', `(*m).e[r * 16u + c] = f32(${name}[${index(major)}]);`))}
}`,
      ),
    ),
    ...[...stores].flatMap((name) =>
      ['row_major', 'col_major'].map(
        (major) => `fn emulated_store_${name}_${major}(offset: u32, m: ${pointer}, stride: u32) {
  ${loop('r', loop('c', `${name}[${index(major)}] = (*m).e[r * 16u + c];`))}
}`,
      ),
    ),
  ];
  return `${rewritten}\n${functions.join('\n')}\n`;
}
