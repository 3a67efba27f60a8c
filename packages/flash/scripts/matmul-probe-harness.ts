/**
 * What the matmul probes (simt-matmul-probe.ts, matrix-matmul-probe.ts) share: the probe inputs, compiling a
 * candidate kernel, and running it on square size × size matrices — poisoned output, one run checked on 512 sampled
 * entries against a CPU product of the same inputs, then the best of three 10-run batches timed by wall clock
 * (submit to onSubmittedWorkDone). Prints one JSON line.
 */

/** The probe's deterministic input values in [−1, 1]. */
export function probeValues(length: number, offset: number): Float32Array<ArrayBuffer> {
  return Float32Array.from({ length }, (_, i) => ((((i + offset) * 2654435761) >>> 0) % 2001) / 1000 - 1);
}

/** The pipeline, or the first lines of the compile error. */
export async function compileProbe(gpu: GPUDevice, code: string): Promise<GPUComputePipeline | string> {
  gpu.pushErrorScope('validation');
  const module = gpu.createShaderModule({ code });
  const pipeline = gpu.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' } });
  const error = await gpu.popErrorScope();
  return error ? error.message.split('\n').slice(0, 4).join(' | ') : pipeline;
}

export interface MatmulRun {
  readonly gpu: GPUDevice;
  readonly variant: string;
  readonly size: number;
  readonly pipeline: GPUComputePipeline;
  readonly bindGroup: GPUBindGroup;
  readonly workgroups: readonly [number, number];
  /** The f32 output C = A·B (row-major, size × size): STORAGE | COPY_SRC | COPY_DST. */
  readonly out: GPUBuffer;
  /** A and B as the kernel sees them (e.g. rounded to f16), row-major. */
  readonly a: Float32Array;
  readonly b: Float32Array;
}

export async function checkAndTimeMatmul(run: MatmulRun): Promise<void> {
  const { gpu, size, out, a, b } = run;
  const runs = async (count: number) => {
    const encoder = gpu.createCommandEncoder();
    for (let r = 0; r < count; r++) {
      const pass = encoder.beginComputePass();
      pass.setPipeline(run.pipeline);
      pass.setBindGroup(0, run.bindGroup);
      pass.dispatchWorkgroups(...run.workgroups);
      pass.end();
    }
    const start = performance.now();
    gpu.queue.submit([encoder.finish()]);
    await gpu.queue.onSubmittedWorkDone();
    return performance.now() - start;
  };
  gpu.queue.writeBuffer(out, 0, new Float32Array(size * size).fill(Number.NaN));
  await runs(1);
  const read = gpu.createBuffer({ size: size * size * 4, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const encoder = gpu.createCommandEncoder();
  encoder.copyBufferToBuffer(out, 0, read, 0, size * size * 4);
  gpu.queue.submit([encoder.finish()]);
  await read.mapAsync(GPUMapMode.READ);
  const got = new Float32Array(read.getMappedRange().slice(0));
  read.unmap();
  let worst = 0;
  let nonFinite = 0;
  for (let s = 0; s < 512; s++) {
    const row = (s * 7919) % size;
    const column = (s * 104729 + (s >> 3)) % size;
    let want = 0;
    for (let k = 0; k < size; k++) want += a[row * size + k]! * b[k * size + column]!;
    const value = got[row * size + column]!;
    if (!Number.isFinite(value)) nonFinite++;
    worst = Math.max(worst, Math.abs(value - want) / (1 + Math.abs(want)));
  }
  await runs(3);
  const reps = 10;
  const ms = Math.min(await runs(reps), await runs(reps), await runs(reps)) / reps;
  console.log(JSON.stringify({ variant: run.variant, size, worstRelError: worst, nonFinite, ms, tflops: (2 * size ** 3) / ms / 1e9 }));
}
