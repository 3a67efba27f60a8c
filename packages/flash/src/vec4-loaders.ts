/**
 * WGSL loaders `load_<buffer>4(base, d, dim, stride) -> vec4<f32>`: elements d..d+3 of a row of `buffer` starting
 * at `base` with element stride `stride`, zero at and past `dim`. Generated for each read-only `array<${T}>`
 * buffer a kernel declares (q, k, v, grad_out), so the forward and both backward kernels share one definition
 * instead of a hand-written copy per buffer and kernel. Kernels place them with `${VEC4_LOADERS}`.
 */
export function vec4Loaders(kernelSource: string): string {
  const buffers = [...kernelSource.matchAll(/var<storage, read> (\w+): array<\$\{T\}>/g)].map((match) => match[1]!);
  return buffers.map(vec4Loader).join('\n');
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
