import { afterAll, describe, expect, it } from 'vitest';
import { createDevice, cpuDevice, tensor, randn, type Device } from './index';
import { expectNoGpuErrors, freshSeed, openTestDevice, randomValues } from './testing';

const gpu = await openTestDevice();
afterAll(() => gpu?.destroy());

const devices: [string, () => Device][] = [['cpu', () => cpuDevice()]];
if (gpu) devices.push(['gpu', () => gpu]);

describe.each(devices)('Tensor views on %s', (name, getDevice) => {
  it('round-trips f32, f16 and bool', async () => {
    const device = getDevice();
    const seed = freshSeed();
    const values = randomValues(37, seed);
    const f32 = tensor(device, values, [37]);
    expect(Array.from(await f32.toArray())).toEqual(Array.from(values));
    const f16 = tensor(device, values, [37], { dtype: 'f16' });
    const back = await f16.toArray();
    for (let i = 0; i < 37; i++) expect(Math.abs(back[i]! - values[i]!)).toBeLessThanOrEqual(Math.abs(values[i]!) * 2 ** -11 + 1e-7);
    const bools = tensor(device, [true, false, true, true, false], [5]);
    expect(bools.dtype).toBe('bool');
    expect(Array.from(await bools.toArray())).toEqual([1, 0, 1, 1, 0]);
  });

  it('transposes, permutes, expands and copies', async () => {
    const device = getDevice();
    const run = async () => {
      const x = tensor(device, Array.from({ length: 24 }, (_, i) => i + 1), [2, 3, 4]);
      const t = x.transpose(0, 2); // [4, 3, 2]
      expect(t.shape).toEqual([4, 3, 2]);
      const values = await t.toArray();
      expect(values[1]).toBe(13); // t[0,0,1] = x[1,0,0]
      expect(values[2]).toBe(5); // t[0,1,0] = x[0,1,0]
      const e = tensor(device, [1, 2, 3], [3, 1]).expand([2, 3, 4]);
      expect(Array.from(await e.toArray()).slice(0, 8)).toEqual([1, 1, 1, 1, 2, 2, 2, 2]);
      const h = tensor(device, [1, 2, 3, 4, 5, 6], [2, 3], { dtype: 'f16' }).transpose(0, 1);
      expect(Array.from(await h.toArray())).toEqual([1, 4, 2, 5, 3, 6]);
      const b = tensor(device, [1, 0, 0, 1, 1, 0], [2, 3], { dtype: 'bool' }).transpose(0, 1);
      expect(Array.from(await b.toArray())).toEqual([1, 1, 0, 1, 0, 0]);
      const r = randn(device, [3, 5], { seed: 7 });
      expect(r.reshape([5, 3]).shape).toEqual([5, 3]);
    };
    if (name === 'gpu') await expectNoGpuErrors(device, run);
    else await run();
  });
});

describe('createDevice', () => {
  it('falls back to the CPU on request and says why', async () => {
    const device = await createDevice({ prefer: 'cpu' });
    expect(device.kind).toBe('cpu');
    expect(device.info.reason).toMatch(/cpu/);
  });
});

describe('cpuDevice', () => {
  it('is one device whatever the reason, so CPU tensors made anywhere combine', async () => {
    const first = cpuDevice();
    const fallback = cpuDevice('fell back to the CPU: test');
    expect(fallback).toBe(first);
    expect(first.info.reason).toBe('fell back to the CPU: test');
    const viaCreate = await createDevice({ prefer: 'cpu' });
    expect(viaCreate).toBe(first);
  });
});
