/**
 * GPU buffer pool keyed by (bucketed size, usage). A released buffer is parked until the next queue submit:
 * commands already encoded but not yet submitted may still read it, and anything written through the queue
 * (writeBuffer) before that submit would land first. After the submit, queue order makes reuse safe.
 *
 * Scratch buffers (`acquireScratch` / `releaseScratch`) are kept apart: only GPU commands recorded in queue order
 * (on the device's encoder) ever write or read them, never `writeBuffer` or a mapping, so a released one is reused
 * at once — the next command that writes it runs after every command recorded before, as a CUDA caching allocator
 * reuses memory in stream order. Calls recorded back to back before a submit then share one scratch instead of
 * each creating its own (a new storage buffer also costs Dawn a clear of its whole size on first use: bench notes,
 * entry 42). They never go to `acquire`, whose callers may write through the queue.
 */
export interface BufferPoolStats {
  /** Buffers created by the pool and not destroyed. */
  readonly liveBuffers: number;
  /** Bytes of those buffers. */
  readonly liveBytes: number;
  /** Bytes handed out and not yet released. */
  readonly inUseBytes: number;
  /** Bytes ready for reuse (and released ones waiting for the next submit). */
  readonly freeBytes: number;
  /** Acquisitions served from the free list. */
  readonly reused: number;
  /** Acquisitions that created a buffer. */
  readonly created: number;
  /** Bytes of the buffers those created (Dawn clears each new storage buffer on its first use). */
  readonly createdBytes: number;
}

/** Sizes are rounded up to one of 2^k · {1, 1.25, 1.5, 1.75} (at least 256 bytes): ≤ 25% waste, good reuse. */
export function bucketSize(bytes: number): number {
  if (bytes <= 256) return 256;
  const power = 2 ** Math.floor(Math.log2(bytes));
  for (const step of [1, 1.25, 1.5, 1.75, 2]) {
    const size = power * step;
    if (size >= bytes) return size;
  }
  return power * 2;
}

export class BufferPool {
  private readonly free = new Map<string, GPUBuffer[]>();
  private readonly freeScratch = new Map<string, GPUBuffer[]>();
  /** Bytes of freeScratch (also in counters.freeBytes); each kind of free buffer is capped at maxFreeBytes. */
  private freeScratchBytes = 0;
  private pending: { key: string; buffer: GPUBuffer }[] = [];
  private readonly sizes = new WeakMap<GPUBuffer, number>();
  private counters = { liveBuffers: 0, liveBytes: 0, inUseBytes: 0, freeBytes: 0, reused: 0, created: 0, createdBytes: 0 };

  /** Free bytes kept above this are destroyed instead of parked (plain buffers and scratch each). */
  maxFreeBytes = 512 * 1024 * 1024;

  constructor(private readonly device: GPUDevice) {}

  acquire(bytes: number, usage: GPUBufferUsageFlags, label: string): GPUBuffer {
    const size = bucketSize(bytes);
    return this.reuse(this.free, size, usage, label) ?? this.create(size, usage, label);
  }

  /**
   * A buffer that only GPU commands recorded in queue order will touch (no writeBuffer, no mapping): see the header.
   * Contents are whatever the last user left.
   */
  acquireScratch(bytes: number, usage: GPUBufferUsageFlags, label: string): GPUBuffer {
    const size = bucketSize(bytes);
    const buffer = this.reuse(this.freeScratch, size, usage, label);
    if (!buffer) return this.create(size, usage, label);
    this.freeScratchBytes -= size;
    return buffer;
  }

  /** Gives back a buffer from `acquireScratch`; the next `acquireScratch` of its size and usage may take it at once. */
  releaseScratch(buffer: GPUBuffer): void {
    const size = this.sizes.get(buffer);
    if (size === undefined || this.freeScratchBytes + size > this.maxFreeBytes) {
      // Past the cap: as any released buffer, after the next submit (destroyed, or parked for `acquire`: safe once
      // the commands that used it are submitted), never destroyed before that submit.
      this.release(buffer);
      return;
    }
    this.counters.inUseBytes -= size;
    this.counters.freeBytes += size;
    this.freeScratchBytes += size;
    const key = `${size}:${buffer.usage}`;
    let list = this.freeScratch.get(key);
    if (!list) this.freeScratch.set(key, (list = []));
    list.push(buffer);
  }

  private reuse(lists: Map<string, GPUBuffer[]>, size: number, usage: GPUBufferUsageFlags, label: string): GPUBuffer | undefined {
    const buffer = lists.get(`${size}:${usage}`)?.pop();
    if (!buffer) return undefined;
    this.counters.reused++;
    this.counters.freeBytes -= size;
    this.counters.inUseBytes += size;
    buffer.label = label;
    return buffer;
  }

  private create(size: number, usage: GPUBufferUsageFlags, label: string): GPUBuffer {
    const created = this.device.createBuffer({ size, usage, label });
    this.sizes.set(created, size);
    this.counters.created++;
    this.counters.createdBytes += size;
    this.counters.liveBuffers++;
    this.counters.liveBytes += size;
    this.counters.inUseBytes += size;
    return created;
  }

  /** Gives a buffer back; it becomes reusable after the next submit. */
  release(buffer: GPUBuffer): void {
    const size = this.sizes.get(buffer);
    if (size === undefined) {
      buffer.destroy();
      return;
    }
    this.counters.inUseBytes -= size;
    this.counters.freeBytes += size;
    this.pending.push({ key: `${size}:${buffer.usage}`, buffer });
  }

  /** Called by the device right after each queue submit. */
  afterSubmit(): void {
    for (const { key, buffer } of this.pending) {
      if (this.counters.freeBytes - this.freeScratchBytes > this.maxFreeBytes) {
        this.destroyFree(buffer);
        continue;
      }
      let list = this.free.get(key);
      if (!list) this.free.set(key, (list = []));
      list.push(buffer);
    }
    this.pending = [];
  }

  private destroyFree(buffer: GPUBuffer): void {
    const size = this.sizes.get(buffer) ?? 0;
    this.counters.freeBytes -= size;
    this.counters.liveBytes -= size;
    this.counters.liveBuffers--;
    buffer.destroy();
  }

  /**
   * Destroys every free buffer (in-use buffers stay with their owners). Call it once the commands recorded so far are
   * submitted (e.g. after `Device.sync()`): parked and scratch buffers may still be used by commands not yet submitted.
   */
  trim(): void {
    this.afterSubmit();
    for (const lists of [this.free, this.freeScratch]) {
      for (const list of lists.values()) for (const buffer of list) this.destroyFree(buffer);
      lists.clear();
    }
    this.freeScratchBytes = 0;
  }

  /** Forgets everything (after device loss the buffers are gone anyway). */
  invalidate(): void {
    this.free.clear();
    this.freeScratch.clear();
    this.freeScratchBytes = 0;
    this.pending = [];
    this.counters = { liveBuffers: 0, liveBytes: 0, inUseBytes: 0, freeBytes: 0, reused: 0, created: 0, createdBytes: 0 };
  }

  stats(): BufferPoolStats {
    return { ...this.counters };
  }
}
