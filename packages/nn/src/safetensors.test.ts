import { describe, expect, it } from 'vitest';
import { freshSeed, randomValues } from '@webattn/tensor/testing';
import { SafetensorsError, parseSafetensors, serializeSafetensors } from './safetensors';
import { localFixtureBytes, localFixtureCases } from './test-support';

describe('safetensors', () => {
  it('reads the file PyTorch wrote with safetensors.torch.save_file', () => {
    const file = parseSafetensors(localFixtureBytes('encoder.safetensors'));
    expect(file.metadata).toEqual({}); // save_file without metadata writes none
    const weight = file.tensors['layers.0.self_attn.in_proj_weight']!;
    expect(weight.dtype).toBe('F32');
    expect(weight.shape).toEqual([48, 16]);
    expect(Object.keys(file.tensors)).toContain('norm.bias');
    expect(Object.keys(file.tensors)).toHaveLength(2 * 12 + 2);
    // Every value is finite and the projection is not all zeros: the offsets pointed at real data.
    expect(weight.data.every(Number.isFinite)).toBe(true);
    expect(weight.data.some((v) => v !== 0)).toBe(true);
  });

  it('round-trips through serializeSafetensors (8-byte aligned data, sorted keys)', () => {
    const seed = freshSeed();
    const a = { shape: [3, 5], data: randomValues(15, seed) };
    const b = { shape: [7], data: randomValues(7, seed + 1) };
    const bytes = serializeSafetensors({ 'z.weight': a, 'a.bias': b }, { format: 'pt' });
    const headerLength = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    expect((8 + headerLength) % 8).toBe(0);
    const back = parseSafetensors(bytes);
    expect(Object.keys(back.tensors)).toEqual(['a.bias', 'z.weight']);
    expect(Array.from(back.tensors['z.weight']!.data)).toEqual(Array.from(a.data));
    expect(back.tensors['z.weight']!.shape).toEqual([3, 5]);
    expect(Array.from(back.tensors['a.bias']!.data)).toEqual(Array.from(b.data));
    expect(back.metadata).toEqual({ format: 'pt' });
  });

  it('decodes F16, BF16, F64 and I64 entries', () => {
    const header = JSON.stringify({
      h: { dtype: 'F16', shape: [2], data_offsets: [0, 4] },
      b: { dtype: 'BF16', shape: [1], data_offsets: [4, 6] },
      d: { dtype: 'F64', shape: [1], data_offsets: [8, 16] },
      i: { dtype: 'I64', shape: [1], data_offsets: [16, 24] },
    });
    const text = new TextEncoder().encode(header);
    const bytes = new Uint8Array(8 + text.length + 24);
    const view = new DataView(bytes.buffer);
    view.setBigUint64(0, BigInt(text.length), true);
    bytes.set(text, 8);
    const body = 8 + text.length;
    view.setUint16(body, 0x3c00, true); // 1.0
    view.setUint16(body + 2, 0xc000, true); // -2.0
    view.setUint16(body + 4, 0x4049, true); // bf16 3.140625
    view.setFloat64(body + 8, Math.PI, true);
    view.setBigInt64(body + 16, -7n, true);
    const file = parseSafetensors(bytes);
    expect(Array.from(file.tensors.h!.data)).toEqual([1, -2]);
    expect(file.tensors.b!.data[0]).toBe(3.140625);
    expect(file.tensors.d!.data[0]).toBe(Math.PI);
    expect(file.tensors.i!.data[0]).toBe(-7);
  });

  it('rejects truncated files, bad headers and out-of-range offsets with SafetensorsError', () => {
    expect(() => parseSafetensors(new Uint8Array(3))).toThrow(SafetensorsError);
    const good = serializeSafetensors({ w: { shape: [4], data: new Float32Array(4) } });
    expect(() => parseSafetensors(good.subarray(0, good.length - 4))).toThrow(/data_offsets/);
    const badLength = good.slice();
    new DataView(badLength.buffer).setBigUint64(0, 1n << 40n, true);
    expect(() => parseSafetensors(badLength)).toThrow(/header length/);
    const notJson = good.slice();
    notJson[8] = 0x21; // '!' instead of '{'
    expect(() => parseSafetensors(notJson)).toThrow(/not valid JSON/);
  });

  it('the shipped fixtures are present', () => {
    expect(localFixtureCases().length).toBeGreaterThan(5);
  });
});
