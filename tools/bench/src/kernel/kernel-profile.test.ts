import { describe, expect, it } from 'vitest';
import { formatKernelShares, kernelShares } from './kernel-profile';

describe('kernelShares', () => {
  it('sums each kernel over the calls, per call, in the order kernels first ran', () => {
    const dispatches = [
      { kernel: 'delta', ms: 0.01 },
      { kernel: 'dkdv', ms: 0.5 },
      { kernel: 'dq', ms: 0.25 },
      { kernel: 'delta', ms: 0.03 },
      { kernel: 'dkdv', ms: 0.7 },
      { kernel: 'dq', ms: 0.15 },
      { kernel: 'dq', ms: 0.1 },
    ];
    const shares = kernelShares(dispatches, 2);
    expect(shares.map((share) => share.kernel)).toEqual(['delta', 'dkdv', 'dq']);
    expect(shares.map((share) => share.ms)).toEqual([0.02, 0.6, 0.25].map((ms) => expect.closeTo(ms, 12)));
    expect(shares.map((share) => share.dispatches)).toEqual([1, 1, 1.5]);
  });
});

describe('formatKernelShares', () => {
  it('gives each kernel its ms and share of the pass, dispatch counts other than one and untimed dispatches', () => {
    const kernels = [
      { kernel: 'flash-backward-delta', ms: 0.0123, dispatches: 1 },
      { kernel: 'flash-backward-query-tiled', ms: 0.5, dispatches: 2.5 },
    ];
    const none = { createdBuffers: 0, createdBytes: 0 };
    expect(formatKernelShares({ kernels, untimedDispatches: 0, ...none }, 1)).toBe(
      '    kernels: flash-backward-delta 0.012 ms (1%), flash-backward-query-tiled 0.500 ms (50%, 2.5 dispatches)',
    );
    expect(formatKernelShares({ kernels: kernels.slice(0, 1), untimedDispatches: 3, ...none }, 0.0123)).toBe('    kernels: flash-backward-delta 0.012 ms (100%); 3 more dispatches untimed');
  });

  it('adds the buffers per call the pool created while the calls were recorded', () => {
    const kernels = [{ kernel: 'flash-backward-delta', ms: 0.0123, dispatches: 1 }];
    expect(formatKernelShares({ kernels, untimedDispatches: 0, createdBuffers: 1.5, createdBytes: 3 * 2 ** 20 }, 0.0123)).toBe(
      '    kernels: flash-backward-delta 0.012 ms (100%); 1.5 new buffers (3.0 MiB) per call',
    );
  });
});
