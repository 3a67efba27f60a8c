import { cpuDevice } from '@webattn/tensor';
import { expectNoGpuErrors, openTestDevice } from '@webattn/tensor/testing';
import { afterAll, describe, expect, it } from 'vitest';
import { describeDevice, formatDeviceReport } from './device-report';
import { checkMatmul } from './matmul-check';

const gpu = await openTestDevice();
afterAll(() => gpu?.destroy());

describe.skipIf(!gpu)('bench info on the GPU', () => {
  it('multiplies awkward shapes within tolerance of float64', async () => {
    for (const [m, k, n] of [
      [1, 1, 1],
      [17, 59, 40],
      [97, 111, 9],
    ] as const) {
      const check = await expectNoGpuErrors(gpu!, () => checkMatmul(gpu!, m, k, n));
      expect(check.where).toBe('gpu');
      expect(check.maxAbsError, `seed ${check.seed} (replay with WEBATTN_SEED), ${m}x${k}x${n}`).toBeLessThanOrEqual(
        check.tolerance,
      );
      expect(check.ok).toBe(true);
    }
  });

  it('reports the adapter, its features and limits', () => {
    const report = describeDevice(gpu!);
    expect(report.kind).toBe('gpu');
    expect(report.limits.maxStorageBufferBindingSize).toBeGreaterThan(0);
    expect(report.features).toEqual([...gpu!.caps.features].sort());
    const text = formatDeviceReport(report).join('\n');
    expect(text).toContain(report.adapter);
    expect(text).toContain('maxComputeWorkgroupStorageSize');
    expect(text).toContain(`subgroups: ${gpu!.caps.subgroups ? 'yes' : 'no'}`);
  });
});

describe('bench info on the CPU device', () => {
  it('runs matmul on the CPU device and says why the CPU was used', async () => {
    const check = await checkMatmul(cpuDevice(), 13, 29, 7);
    expect(check.where).toBe('cpu');
    expect(check.ok).toBe(true);
    expect(formatDeviceReport(describeDevice(cpuDevice()))[1]).toMatch(/why: /);
  });
});
