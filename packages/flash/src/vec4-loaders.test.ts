import { describe, expect, it } from 'vitest';
import { rowElements, vec4Loaders } from './vec4-loaders';

describe('vec4Loaders', () => {
  it('writes one loader per read-only element buffer the kernel declares, none for outputs', () => {
    const kernel = [
      '@group(0) @binding(5) var<storage, read> q: array<${T}>;',
      '@group(0) @binding(8) var<storage, read> grad_out: array<${T}>;',
      '@group(0) @binding(9) var<storage, read> logsumexp: array<f32>;',
      '@group(0) @binding(11) var<storage, read_write> dq: array<${T}>;',
    ].join('\n');
    const code = vec4Loaders(kernel);
    expect([...code.matchAll(/^fn (\w+)/gm)].map((match) => match[1])).toEqual(['load_q4', 'load_grad_out4']);
    expect(code).toContain('f32(grad_out[base + (d + 3u) * stride])');
    expect(code).toContain('value[t] = f32(q[base + (d + t) * stride]);');
  });

  it('reads a buffer bound as vec4 rows in one load, f16 converted to f32', () => {
    const kernel = '@group(0) @binding(5) var<storage, read> q: array<${Q_ELEMENT}>;';
    expect(vec4Loaders(kernel, new Set(['q']))).toContain('return q[(base + d) / 4u];');
    expect(vec4Loaders(kernel, new Set(['q']), 'f16')).toContain('return vec4<f32>(q[(base + d) / 4u]);');
    expect(rowElements(kernel, new Set(['q']), 'f32')).toEqual({ Q_ELEMENT: 'vec4<f32>' });
    expect(rowElements(kernel, new Set(['q']), 'f16')).toEqual({ Q_ELEMENT: 'vec4<f16>' });
    expect(rowElements(kernel, new Set(), 'f16')).toEqual({ Q_ELEMENT: 'f16' });
  });
});
