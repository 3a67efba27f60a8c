/**
 * WGSL loaders `load_<buffer>4(base, d, dim, stride) -> vec4<f32>`: elements d..d+3 (d a multiple of 4) of a row of
 * `buffer` starting at `base` with element stride `stride`, zero at and past `dim`. Generated for each read-only
 * row buffer a kernel declares (`array<${T}>` or `array<${Q_ELEMENT}>`-style: q, k, v, grad_out), so the forward
 * and both backward kernels share one definition instead of a hand-written copy per buffer and kernel. Kernels
 * place them with `${VEC4_LOADERS}`.
 *
 * A buffer named in `vec4Rows` is bound as array<vec4<f32>> or array<vec4<f16>> (its `${<NAME>_ELEMENT}`
 * replacement, `rowElements`) and read one vec4 per load: rows of contiguous dims at multiples of 4
 * (`vec4RowTensors`), where the scalar form would issue four strided loads per vec4 (bench notes, entry 26: 1.2× on
 * the tiled f32 forward at D64; entry 28: 1.15× on the tiled f16 forward at D64).
 */
import type { AttentionLayout, AttentionProblem } from '@webattn/tensor';
import { rowsOfFours } from './chunked-rows';

/** The read-only row buffers of a kernel read as vec4s (names as the WGSL declares them). */
export type Vec4Rows = ReadonlySet<string>;

export function vec4Loaders(kernelSource: string, vec4Rows: Vec4Rows = new Set(), dtype: 'f32' | 'f16' = 'f32'): string {
  const buffers = [...kernelSource.matchAll(/var<storage, read> (\w+): array<\$\{(?:T|[A-Z_]+_ELEMENT)\}>/g)].map((match) => match[1]!);
  return buffers.map((buffer) => (vec4Rows.has(buffer) ? vec4RowLoader(buffer, dtype) : vec4Loader(buffer))).join('\n');
}

/** `${Q_ELEMENT}`, `${K_ELEMENT}`, ... replacements: vec4<dtype> for the buffers in `vec4Rows`, else the dtype. */
export function rowElements(kernelSource: string, vec4Rows: Vec4Rows, dtype: 'f32' | 'f16'): Record<string, string> {
  const buffers = [...kernelSource.matchAll(/var<storage, read> (\w+): array<\$\{[A-Z_]+_ELEMENT\}>/g)].map((match) => match[1]!);
  return Object.fromEntries(buffers.map((buffer) => [`${buffer.toUpperCase()}_ELEMENT`, vec4Rows.has(buffer) ? `vec4<${dtype}>` : dtype]));
}

/**
 * The row buffers the tiled and compact kernels (and the backward's delta) may read as vec4s (16 bytes of f32, 8 of
 * f16): those whose rows `rowsOfFours` allows (grad_out by its own layout, when the backward passes it).
 */
export function vec4RowTensors(problem: AttentionProblem, gradOut?: AttentionLayout): Vec4Rows {
  const { layout, headDimQk, headDimV } = problem;
  const rows: [string, AttentionLayout | undefined, number][] = [
    ['q', layout.q, headDimQk],
    ['k', layout.k, headDimQk],
    ['v', layout.v, headDimV],
    ['grad_out', gradOut, headDimV],
    ['out', layout.out, headDimV],
  ];
  return new Set(rows.filter(([, rowLayout, dims]) => rowLayout && rowsOfFours(rowLayout, dims)).map(([name]) => name));
}

function vec4Loader(buffer: string): string {
  const at = (offset: string) => `f32(${buffer}[base + ${offset} * stride])`;
  return `fn load_${buffer}4(base: u32, d: u32, dim: u32, stride: u32) -> vec4<f32> {
  if (d + 3u < dim) {
    return vec4<f32>(${at('d')}, ${at('(d + 1u)')}, ${at('(d + 2u)')}, ${at('(d + 3u)')});
  }
  var value = vec4<f32>(0.0);
  for (var t = 0u; t < 4u; t++) {
    if (d + t < dim) {
      value[t] = ${at('(d + t)')};
    }
  }
  return value;
}
`;
}

// base and dim are multiples of 4 here (vec4RowTensors), stride is 1.
function vec4RowLoader(buffer: string, dtype: 'f32' | 'f16'): string {
  const element = `${buffer}[(base + d) / 4u]`;
  return `fn load_${buffer}4(base: u32, d: u32, dim: u32, stride: u32) -> vec4<f32> {
  if (d < dim) {
    return ${dtype === 'f16' ? `vec4<f32>(${element})` : element};
  }
  return vec4<f32>(0.0);
}
`;
}
