/**
 * Compute pipelines cached per device. The cache key is a contract: the kernel's name plus setup-time facts
 * (dtype, feature path, override constants) — never shapes, which travel in uniforms. Concurrent async callers
 * share one in-flight `createComputePipelineAsync`; synchronous callers (ops encode synchronously) get the
 * ready pipeline or create it on the spot.
 */
export interface KernelSource {
  /** Stable kernel name, used in labels, error messages and the cache key. */
  readonly name: string;
  /** Setup-time facts that change the code or constants: e.g. "f16|subgroups|tile=64". Never shapes. */
  readonly variant: string;
  /** Builds the final WGSL; called once per key. */
  readonly code: () => string;
  readonly entryPoint?: string;
  readonly constants?: Readonly<Record<string, number>>;
}

const cacheKey = (source: KernelSource) => `${source.name}#${source.variant}`;

export class PipelineCache {
  private readonly ready = new Map<string, GPUComputePipeline>();
  private readonly inFlight = new Map<string, Promise<GPUComputePipeline>>();
  private readonly modules = new Map<string, GPUShaderModule>();

  constructor(private readonly device: GPUDevice) {}

  get size(): number {
    return this.ready.size;
  }

  keys(): string[] {
    return [...this.ready.keys()];
  }

  private descriptor(source: KernelSource): GPUComputePipelineDescriptor {
    const key = cacheKey(source);
    let module = this.modules.get(key);
    if (!module) {
      module = this.device.createShaderModule({ code: source.code(), label: key });
      this.modules.set(key, module);
    }
    return {
      label: key,
      layout: 'auto',
      compute: { module, entryPoint: source.entryPoint ?? 'main', constants: { ...source.constants } },
    };
  }

  /** The pipeline now (created synchronously on a miss). */
  get(source: KernelSource): GPUComputePipeline {
    const key = cacheKey(source);
    const hit = this.ready.get(key);
    if (hit) return hit;
    const pipeline = this.device.createComputePipeline(this.descriptor(source));
    this.ready.set(key, pipeline);
    return pipeline;
  }

  /** The pipeline, compiled off the main thread where the implementation can; one promise per key. */
  getAsync(source: KernelSource): Promise<GPUComputePipeline> {
    const key = cacheKey(source);
    const hit = this.ready.get(key);
    if (hit) return Promise.resolve(hit);
    let promise = this.inFlight.get(key);
    if (!promise) {
      promise = this.device.createComputePipelineAsync(this.descriptor(source)).then(
        (pipeline) => {
          this.inFlight.delete(key);
          if (!this.ready.has(key)) this.ready.set(key, pipeline);
          return this.ready.get(key)!;
        },
        (error: unknown) => {
          this.inFlight.delete(key);
          throw error;
        },
      );
      this.inFlight.set(key, promise);
    }
    return promise;
  }

  invalidate(): void {
    this.ready.clear();
    this.inFlight.clear();
    this.modules.clear();
  }
}

const caches = new WeakMap<GPUDevice, PipelineCache>();

/** The one pipeline cache of a GPUDevice (also for callers that bring their own device, not our `Device`). */
export function pipelineCacheFor(device: GPUDevice): PipelineCache {
  let cache = caches.get(device);
  if (!cache) caches.set(device, (cache = new PipelineCache(device)));
  return cache;
}
