import { pipelineCacheFor, type Device, type KernelSource } from '@webattn/tensor';

/**
 * Where flash kernels record: into a caller's GPUCommandEncoder on a raw GPUDevice (temporary buffers are
 * created and destroyed by `finish`), or into a webattn `Device`'s shared encoder (temporaries come from and go
 * back to its buffer pool, dispatches go through `Device.dispatch` so debug mode names the kernel).
 */
/** A whole buffer (bound up to the binding limit) or a sub-range of one (binding-chunks.ts). */
export type BoundBuffer = GPUBuffer | GPUBufferBinding;

export interface KernelRecorder {
  readonly gpu: GPUDevice;
  temporary(bytes: number, usage: GPUBufferUsageFlags, label: string): GPUBuffer;
  /**
   * A temporary that only the recorded commands write and read (never `writeBuffer`): on a webattn `Device` the
   * pool's scratch, which the next call recorded may reuse at once (stream order; buffer-pool.ts).
   */
  scratch(bytes: number, usage: GPUBufferUsageFlags, label: string): GPUBuffer;
  dispatch(source: KernelSource, bindings: readonly (readonly [number, BoundBuffer])[], uniforms: ArrayBuffer, workgroups: readonly [number, number, number]): void;
  /** Records zeroing the first `bytes` (a multiple of 4) of `buffer` (made with COPY_DST), in order with the dispatches. */
  clear(buffer: GPUBuffer, bytes: number): void;
  /** Gives the temporaries back (raw: destroys them — only after the commands were submitted). */
  finish(): void;
}

function resource(gpu: GPUDevice, bound: BoundBuffer): GPUBufferBinding {
  if ('buffer' in bound) return bound;
  // Pool buckets may make a buffer larger than the binding limit although what the kernel reads fits (checked by
  // checkFlash): bind at most the limit.
  return { buffer: bound, size: Math.min(bound.size, Math.floor(gpu.limits.maxStorageBufferBindingSize / 4) * 4) };
}

function bindGroup(gpu: GPUDevice, pipeline: GPUComputePipeline, name: string, bindings: readonly (readonly [number, BoundBuffer])[], uniforms: GPUBuffer, uniformBytes: number): GPUBindGroup {
  return gpu.createBindGroup({
    label: name,
    layout: pipeline.getBindGroupLayout(0),
    entries: [
      { binding: 0, resource: { buffer: uniforms, size: uniformBytes } },
      ...bindings.map(([binding, bound]) => ({ binding, resource: resource(gpu, bound) })),
    ],
  });
}

export function rawRecorder(gpu: GPUDevice, encoder: GPUCommandEncoder): KernelRecorder {
  const temporaries: GPUBuffer[] = [];
  const temporary = (bytes: number, usage: GPUBufferUsageFlags, label: string) => {
    const buffer = gpu.createBuffer({ size: Math.max(16, Math.ceil(bytes / 16) * 16), usage, label });
    temporaries.push(buffer);
    return buffer;
  };
  return {
    gpu,
    temporary,
    scratch: temporary,
    dispatch(source, bindings, uniforms, workgroups) {
      const pipeline = pipelineCacheFor(gpu).get(source);
      const uniformBuffer = temporary(uniforms.byteLength, GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST, `${source.name} uniforms`);
      gpu.queue.writeBuffer(uniformBuffer, 0, uniforms);
      const pass = encoder.beginComputePass({ label: source.name });
      pass.setPipeline(pipeline);
      pass.setBindGroup(0, bindGroup(gpu, pipeline, source.name, bindings, uniformBuffer, uniforms.byteLength));
      pass.dispatchWorkgroups(...workgroups);
      pass.end();
    },
    clear(buffer, bytes) {
      encoder.clearBuffer(buffer, 0, bytes);
    },
    finish() {
      for (const buffer of temporaries.splice(0)) buffer.destroy();
    },
  };
}

export function deviceRecorder(device: Device): KernelRecorder {
  const temporaries: GPUBuffer[] = [];
  const scratches: GPUBuffer[] = [];
  const gpu = device.gpu;
  const temporary = (bytes: number, usage: GPUBufferUsageFlags, label: string) => {
    const buffer = device.pool.acquire(bytes, usage, label);
    temporaries.push(buffer);
    return buffer;
  };
  return {
    gpu,
    temporary,
    scratch(bytes, usage, label) {
      const buffer = device.pool.acquireScratch(bytes, usage, label);
      scratches.push(buffer);
      return buffer;
    },
    dispatch(source, bindings, uniforms, workgroups) {
      const pipeline = device.pipelines.get(source);
      const uniformBuffer = temporary(uniforms.byteLength, GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST, `${source.name} uniforms`);
      gpu.queue.writeBuffer(uniformBuffer, 0, uniforms);
      device.dispatch(source.name, pipeline, [bindGroup(gpu, pipeline, source.name, bindings, uniformBuffer, uniforms.byteLength)], workgroups);
    },
    clear(buffer, bytes) {
      device.commandEncoder().clearBuffer(buffer, 0, bytes);
    },
    finish() {
      // The pool reuses a released buffer only after the next submit, so releasing right away is safe.
      for (const buffer of temporaries.splice(0)) device.pool.release(buffer);
      // Scratch is reused at once: whatever takes it next is recorded after every command that used it here.
      for (const buffer of scratches.splice(0)) device.pool.releaseScratch(buffer);
    },
  };
}
