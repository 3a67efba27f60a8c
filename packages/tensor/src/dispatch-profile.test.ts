/**
 * Device.profileDispatches (dispatch-profile.ts): the GPU time of each dispatch a call records, for the benchmarks'
 * per-kernel breakdown. Runs on the test device's real timestamps (lavapipe has 'timestamp-query').
 */
import { afterAll, describe, expect, it } from 'vitest';
import { InvalidArgumentError, MAX_PROFILED_DISPATCHES, cpuDevice, matmul, randn, type Tensor } from './index';
import { expectNoGpuErrors, freshSeed, openTestDevice } from './testing';

const gpu = await openTestDevice();
afterAll(() => gpu?.destroy());

describe.skipIf(!gpu)('profileDispatches', () => {
  /** Two random n×n matrices. */
  const square = (n: number): [Tensor, Tensor] => {
    const seed = freshSeed();
    return [randn(gpu!, [n, n], { seed }), randn(gpu!, [n, n], { seed: seed + 1 })];
  };
  const disposeAll = (tensors: readonly Tensor[]) => tensors.forEach((t) => t.dispose());

  it('times each dispatch in order, under its kernel name; a larger product takes longer', async () => {
    const device = gpu!;
    expect(device.caps.timestampQuery, 'the test device has timestamp-query').toBe(true);
    const [small, large] = [square(8), square(512)];
    await device.sync();
    const { result, dispatches, untimed } = await device.profileDispatches(() => [matmul(small[0], small[1]), matmul(large[0], large[1]), matmul(small[0], small[1])]);
    expect(dispatches.map((d) => d.kernel)).toEqual(['matmul', 'matmul', 'matmul']);
    expect(untimed).toBe(0);
    for (const d of dispatches) expect(d.ms).toBeGreaterThan(0);
    // 512³ against 8³ multiply-adds (262144 times the work; lavapipe's small dispatches vary by milliseconds under load).
    expect(dispatches[1]!.ms).toBeGreaterThan(Math.min(dispatches[0]!.ms, dispatches[2]!.ms));
    // What the call returned is there (and correct: the products are computed).
    expect(result).toHaveLength(3);
    expect(Array.from(await result[0]!.toArray())).toEqual(Array.from(await result[2]!.toArray()));
    disposeAll([...result, ...small, ...large]);
  });

  it('times the first `capacity` dispatches and counts the rest as untimed; the next profile starts afresh', async () => {
    const device = gpu!;
    const pair = square(16);
    const { result, dispatches, untimed } = await device.profileDispatches(() => Array.from({ length: 5 }, () => matmul(pair[0], pair[1])), 2);
    expect(dispatches).toHaveLength(2);
    expect(untimed).toBe(3);
    disposeAll(result);
    // The profile is closed: the next profile starts afresh.
    const again = await device.profileDispatches(() => [matmul(pair[0], pair[1])]);
    expect(again.dispatches).toHaveLength(1);
    disposeAll([...again.result, ...pair]);
  });

  it('passes on what the recording throws, with its passes run and the profile closed (no GPU error)', async () => {
    const device = gpu!;
    const pair = square(16);
    await expectNoGpuErrors(device, async () => {
      const made: Tensor[] = [];
      await expect(
        device.profileDispatches(() => {
          made.push(matmul(pair[0], pair[1]));
          throw new Error('recording failed');
        }),
      ).rejects.toThrow('recording failed');
      disposeAll(made);
    });
    const { result, dispatches } = await device.profileDispatches(() => [matmul(pair[0], pair[1])]);
    expect(dispatches).toHaveLength(1);
    disposeAll([...result, ...pair]);
  });

  it('refuses a profile inside a profile and capacities outside [1, MAX_PROFILED_DISPATCHES]', async () => {
    const device = gpu!;
    let inner: Promise<unknown> | undefined;
    await device.profileDispatches(() => {
      inner = device.profileDispatches(() => []).catch((error: unknown) => error);
      return [];
    });
    expect(String(await inner)).toContain('a profile is already open');
    await expect(device.profileDispatches(() => [], 0)).rejects.toThrow(InvalidArgumentError);
    await expect(device.profileDispatches(() => [], MAX_PROFILED_DISPATCHES + 1)).rejects.toThrow(`[1, ${MAX_PROFILED_DISPATCHES}]`);
  });
});

describe('profileDispatches without GPU timestamps', () => {
  it('refuses the CPU device, naming the fix', async () => {
    await expect(cpuDevice().profileDispatches(() => [])).rejects.toThrow(/'timestamp-query'.*wall-clock/);
  });
});
