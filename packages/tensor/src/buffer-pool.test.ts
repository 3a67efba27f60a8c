import { describe, expect, it } from 'vitest';
import { BufferPool } from './buffer-pool.js';

/** Just enough of a GPUDevice for the pool: buffers that remember their size, usage and whether they were destroyed. */
function fakeDevice() {
  const created: { size: number; usage: number; label: string; destroyed: boolean; destroy(): void }[] = [];
  const device = {
    createBuffer({ size, usage, label }: GPUBufferDescriptor) {
      const buffer = { size, usage, label: label ?? '', destroyed: false, destroy() { buffer.destroyed = true; } };
      created.push(buffer);
      return buffer;
    },
  };
  return { device: device as unknown as GPUDevice, created };
}

const STORAGE = 0x80;
const STORAGE_COPY_DST = 0x80 | 0x08;

describe('BufferPool scratch', () => {
  it('reuses a released scratch at once, where a released plain buffer waits for the next submit', () => {
    const { device, created } = fakeDevice();
    const pool = new BufferPool(device);
    const first = pool.acquireScratch(1000, STORAGE, 'scores');
    pool.releaseScratch(first);
    expect(pool.acquireScratch(900, STORAGE, 'scores again')).toBe(first);
    const plain = pool.acquire(1000, STORAGE, 'plain');
    pool.release(plain);
    expect(pool.acquire(1000, STORAGE, 'plain again')).not.toBe(plain);
    pool.afterSubmit();
    expect(pool.acquire(1000, STORAGE, 'after submit')).toBe(plain);
    expect(created.length).toBe(3);
  });

  it('never hands a scratch to acquire (whose callers may write through the queue), nor across usages', () => {
    const { device } = fakeDevice();
    const pool = new BufferPool(device);
    const scratch = pool.acquireScratch(4096, STORAGE_COPY_DST, 'scratch');
    pool.releaseScratch(scratch);
    pool.afterSubmit();
    expect(pool.acquire(4096, STORAGE_COPY_DST, 'upload')).not.toBe(scratch);
    expect(pool.acquireScratch(4096, STORAGE, 'other usage')).not.toBe(scratch);
    expect(pool.acquireScratch(4096, STORAGE_COPY_DST, 'same usage')).toBe(scratch);
  });

  it('counts scratch in the stats; past maxFreeBytes of scratch it waits for the next submit, then follows the plain cap', () => {
    const { device, created } = fakeDevice();
    const pool = new BufferPool(device);
    pool.maxFreeBytes = 2048;
    const kept = pool.acquireScratch(2048, STORAGE, 'kept');
    const over = pool.acquireScratch(1024, STORAGE, 'over the cap');
    const plain = pool.acquire(1024, STORAGE, 'plain');
    expect(pool.stats()).toMatchObject({ liveBuffers: 3, inUseBytes: 4096, freeBytes: 0 });
    pool.releaseScratch(kept);
    pool.releaseScratch(over);
    // Not destroyed before the submit: commands recorded since may still use it.
    expect(created.some((buffer) => buffer.destroyed)).toBe(false);
    expect(pool.stats()).toMatchObject({ inUseBytes: 1024, freeBytes: 3072 });
    expect(pool.acquireScratch(1024, STORAGE, 'not reused at once')).not.toBe(over);
    pool.release(plain);
    pool.afterSubmit();
    // The plain cap counts plain free buffers only: the 2048 scratch bytes kept do not push these out.
    expect(created.some((buffer) => buffer.destroyed)).toBe(false);
    expect([over, plain]).toContain(pool.acquire(1024, STORAGE, 'after submit'));
    pool.trim();
    expect(created.filter((buffer) => !buffer.destroyed).length).toBe(2);
    expect(pool.stats()).toMatchObject({ liveBuffers: 2, freeBytes: 0, inUseBytes: 2048 });
  });
});
