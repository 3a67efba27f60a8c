import type { Device } from './device';
import type { KernelSource } from './pipeline-cache';

export interface KernelRun {
  /** Storage buffers, bound at @group(0) @binding(0..n-1) in this order. */
  readonly buffers: readonly GPUBuffer[];
  /** Packed uniforms (see uniformLayout), bound at @binding(n) after the buffers. */
  readonly uniforms?: ArrayBuffer;
  /** Workgroup counts; use `workgroupGrid` for 1-D problems larger than one dimension allows. */
  readonly workgroups: readonly [number, number?, number?];
}

/**
 * Records one kernel into the device's shared encoder: cached pipeline, a pooled uniform buffer, a bind group.
 * Buffers bound here must stay alive until the dispatch is submitted (pool release semantics guarantee this).
 */
export function runKernel(device: Device, source: KernelSource, run: KernelRun): void {
  device.kernelScope(source.name, () => recordKernel(device, source, run));
}

function recordKernel(device: Device, source: KernelSource, run: KernelRun): void {
  const gpu = device.gpu;
  const pipeline = device.pipelines.get(source);
  const entries: GPUBindGroupEntry[] = run.buffers.map((buffer, binding) => ({ binding, resource: { buffer } }));
  let uniformBuffer: GPUBuffer | undefined;
  if (run.uniforms) {
    uniformBuffer = device.pool.acquire(
      run.uniforms.byteLength,
      GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
      `${source.name} uniforms`,
    );
    gpu.queue.writeBuffer(uniformBuffer, 0, run.uniforms);
    entries.push({ binding: run.buffers.length, resource: { buffer: uniformBuffer, size: run.uniforms.byteLength } });
  }
  const bindGroup = gpu.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries, label: source.name });
  device.dispatch(source.name, pipeline, [bindGroup], run.workgroups);
  if (uniformBuffer) device.pool.release(uniformBuffer);
}

/**
 * Splits `count` workgroups into a 2-D grid within the device's per-dimension limit. Kernels rebuild the linear
 * index as `wid.x + wid.y * num_workgroups.x` and return when it is ≥ the real count.
 */
export function workgroupGrid(device: Device, count: number): [number, number] {
  const limit = device.caps.maxComputeWorkgroupsPerDimension || 65535;
  if (count <= limit) return [Math.max(1, count), 1];
  const y = Math.ceil(count / limit);
  return [Math.ceil(count / y), y];
}
