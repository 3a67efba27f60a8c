import { describe, expect, it } from 'vitest';
import { vec4Loaders } from './vec4-loaders';

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
});
