import { describe, expect, it } from 'vitest';
import type { SdpaRequest } from './backend';
import { allowedCheck, deviceKindCheck, packageChecks, weightsCheck } from './checks';
import { GPU_TARGET, describeShape } from './test-problems';
import { rejection } from '@webattn/tensor';

const request = (overrides: Partial<SdpaRequest> = {}): SdpaRequest => ({
  problem: describeShape(),
  target: GPU_TARGET,
  restriction: null,
  ...overrides,
});

describe('dispatcher checks', () => {
  it('allowed: passes without a restriction or when listed, names the restriction otherwise', () => {
    expect(allowedCheck.check('flash', request())).toBeNull();
    expect(allowedCheck.check('flash', request({ restriction: { backends: ['flash'], source: 'backends option' } }))).toBeNull();
    const refused = allowedCheck.check('flash', request({ restriction: { backends: ['math', 'cpu'], source: 'withSdpaBackends' } }));
    expect(refused).toMatchObject({ backend: 'flash', check: 'allowed', got: 'not in [math, cpu]' });
    expect((refused as { message: string }).message).toContain('withSdpaBackends');
  });

  it('device: GPU backends refuse CPU tensors and the other way round', () => {
    expect(deviceKindCheck('gpu').check('flash', request())).toBeNull();
    const cpuOnGpu = deviceKindCheck('cpu').check('cpu', request());
    expect(cpuOnGpu).toMatchObject({ check: 'device', got: 'gpu tensors', need: 'cpu tensors' });
    const gpuOnCpu = deviceKindCheck('gpu').check('math', request({ target: { ...GPU_TARGET, kind: 'cpu' } }));
    expect((gpuOnCpu as { message: string }).message).toContain('tensor.to(gpuDevice)');
  });

  it('needWeights: refused by backends that do not materialise the weights', () => {
    expect(weightsCheck.check('flash', request())).toBeNull();
    const refused = weightsCheck.check('flash', request({ problem: describeShape({}, { needWeights: true }) }));
    expect((refused as { message: string }).message).toBe(
      'flash: needWeights true, need false (only math and cpu materialise the attention weights)',
    );
  });

  it('packageChecks: wraps a package check list, renames to the dispatcher backend, skips the other device kind', () => {
    const wrapped = packageChecks('kernelLimits', () => [rejection('splitKv', 'head dim', 320, '≤ 256')]);
    expect(wrapped.check('efficient', request())).toEqual([
      { backend: 'efficient', check: 'head dim', got: 320, need: '≤ 256', message: 'efficient: head dim 320, need ≤ 256' },
    ]);
    expect(wrapped.check('efficient', request({ target: { ...GPU_TARGET, kind: 'cpu' } }))).toBeNull();
    expect(packageChecks('kernelLimits', () => []).check('flash', request())).toEqual([]);
  });
});
