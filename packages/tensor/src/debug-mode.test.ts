import { afterAll, describe, expect, it } from 'vitest';
import { createDevice, KernelError, runKernel, tensor } from './index';
import { openTestDevice } from './testing';

const gpu = await openTestDevice();
afterAll(() => gpu?.destroy());

// A kernel whose shader needs 1024 words in binding 0: binding a 4-byte tensor (a 256-byte pooled buffer) is a validation error.
const needsManyWords = {
  name: 'needs-1024-words',
  variant: 'test',
  code: () => `
@group(0) @binding(0) var<storage, read_write> data: array<u32, 1024>;
@compute @workgroup_size(1) fn main() { data[1023] = 1u; }`,
};

describe.skipIf(!gpu)('debug mode', () => {
  it('names the kernel whose validation failed, and the device stays usable', async () => {
    const device = await createDevice({ debug: true, requireGpu: true });
    try {
      const tiny = tensor(device, [7], [1]);
      runKernel(device, needsManyWords, { buffers: [tiny.buffer], workgroups: [1] });
      const failure = await device.sync().then(
        () => null,
        (error: unknown) => error,
      );
      expect(failure).toBeInstanceOf(KernelError);
      expect((failure as KernelError).kernel).toBe('needs-1024-words');
      expect((failure as Error).message).toMatch(/kernel needs-1024-words:/);
      // The failed kernel left the input intact and later work runs.
      expect(Array.from(await tiny.toArray())).toEqual([7]);
      await device.sync();
    } finally {
      device.destroy();
    }
  });
});
