import { BufferPool } from './buffer-pool';
import { DispatchProfile, MAX_PROFILED_DISPATCHES, type DispatchTime } from './dispatch-profile';
import { DeviceLostError, InvalidArgumentError, KernelError, NoAdapterError } from './errors';
import { pipelineCacheFor, type PipelineCache } from './pipeline-cache';

/** One subgroup-matrix configuration the adapter supports (M×N×K, component → result type). */
export interface SubgroupMatrixConfig {
  readonly componentType: string;
  readonly resultComponentType: string;
  readonly M: number;
  readonly N: number;
  readonly K: number;
}

/** What kernels may rely on. On the CPU device, features are empty and limits are those of plain JS arrays. */
export interface DeviceCaps {
  readonly features: ReadonlySet<string>;
  readonly shaderF16: boolean;
  readonly subgroups: boolean;
  readonly timestampQuery: boolean;
  readonly subgroupMatrix: boolean;
  readonly subgroupMinSize: number;
  readonly subgroupMaxSize: number;
  readonly subgroupMatrixConfigs: readonly SubgroupMatrixConfig[];
  readonly maxComputeWorkgroupStorageSize: number;
  readonly maxComputeInvocationsPerWorkgroup: number;
  readonly maxComputeWorkgroupSizeX: number;
  readonly maxComputeWorkgroupsPerDimension: number;
  readonly maxStorageBufferBindingSize: number;
  readonly maxBufferSize: number;
  readonly maxStorageBuffersPerShaderStage: number;
}

export interface DeviceInfo {
  readonly kind: 'gpu' | 'cpu';
  /** e.g. "nvidia hopper (NVIDIA H100 80GB HBM3)" or "cpu". */
  readonly adapter: string;
  readonly vendor: string;
  readonly architecture: string;
  readonly description: string;
  /** Why this device was chosen (e.g. why the CPU fallback). */
  readonly reason: string;
}

export interface CreateDeviceOptions {
  /** 'cpu' skips WebGPU entirely. Default 'gpu' (falling back to the CPU when there is no adapter). */
  readonly prefer?: 'gpu' | 'cpu';
  /** Throw NoAdapterError instead of falling back to the CPU. */
  readonly requireGpu?: boolean;
  /** A GPU object to use instead of navigator.gpu / the `webgpu` package. */
  readonly gpu?: GPU;
  readonly powerPreference?: GPUPowerPreference;
  /** Dawn toggles for Node (default: allow_unsafe_apis, vulkan_enable_f16_on_nvidia). */
  readonly dawnFeatures?: readonly string[];
  /**
   * Dawn toggles turned off in Node (default: timestamp_quantization, so that GPU timestamps keep the device's
   * resolution instead of Dawn's 65.536 µs steps; pass [] for Dawn's defaults).
   */
  readonly disabledDawnFeatures?: readonly string[];
  /** Submit every kernel inside error scopes and report failures naming the kernel. Slow; for debugging. */
  readonly debug?: boolean;
}

const OPTIONAL_FEATURES = [
  'shader-f16',
  'subgroups',
  'timestamp-query',
  'chromium-experimental-subgroup-matrix',
  'subgroup-size-control',
] as const;

const LIMITS_WANTED = [
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupSizeY',
  'maxComputeWorkgroupSizeZ',
  'maxComputeWorkgroupsPerDimension',
  'maxStorageBufferBindingSize',
  'maxBufferSize',
  'maxStorageBuffersPerShaderStage',
] as const;

const CPU_CAPS: DeviceCaps = {
  features: new Set(),
  shaderF16: false,
  subgroups: false,
  timestampQuery: false,
  subgroupMatrix: false,
  subgroupMinSize: 0,
  subgroupMaxSize: 0,
  subgroupMatrixConfigs: [],
  maxComputeWorkgroupStorageSize: 0,
  maxComputeInvocationsPerWorkgroup: 0,
  maxComputeWorkgroupSizeX: 0,
  maxComputeWorkgroupsPerDimension: 0,
  maxStorageBufferBindingSize: 2 ** 31,
  maxBufferSize: 2 ** 31,
  maxStorageBuffersPerShaderStage: 0,
};

/** Dispatches gathered into one command encoder before it is submitted automatically. */
const MAX_PENDING_DISPATCHES = 64;

/**
 * A compute device: a WebGPU device with its buffer pool, pipeline cache and command batching, or the CPU.
 * Ops encode into the shared encoder; `submit()` sends it (readbacks submit first). Loss of the GPU device
 * invalidates the caches and makes every later use throw `DeviceLostError`.
 */
export class Device {
  readonly kind: 'gpu' | 'cpu';
  private deviceInfo: DeviceInfo;
  readonly caps: DeviceCaps;
  readonly debug: boolean;
  private readonly gpuDevice: GPUDevice | undefined;
  private readonly bufferPool: BufferPool | undefined;
  private encoder: GPUCommandEncoder | undefined;
  private pendingDispatches = 0;
  /** > 0 inside `withSubmitsHeld`: no automatic submit every MAX_PENDING_DISPATCHES dispatches. */
  private submitsHeld = 0;
  private scopeDepth = 0;
  private pendingScopes: Promise<void>[] = [];
  private lostReason: string | undefined;
  private readonly kernelErrors: KernelError[] = [];
  /** The device's hold on the `webgpu` package's GPU object (Node exits once every hold is released). */
  private gpuHold: GpuHold | undefined;
  private readonly lostListeners = new Set<(reason: string) => void>();
  private dispatchProfile: DispatchProfile | undefined;

  /** @internal Use `createDevice()`. */
  constructor(init: {
    kind: 'gpu' | 'cpu';
    info: DeviceInfo;
    caps: DeviceCaps;
    gpuDevice?: GPUDevice;
    gpuHold?: GpuHold;
    debug?: boolean;
  }) {
    this.kind = init.kind;
    this.deviceInfo = init.info;
    this.caps = init.caps;
    this.debug = init.debug ?? false;
    this.gpuDevice = init.gpuDevice;
    this.gpuHold = init.gpuHold;
    if (init.gpuDevice) {
      this.bufferPool = new BufferPool(init.gpuDevice);
      void init.gpuDevice.lost.then((info) => this.markLost(info.message || info.reason || 'device lost'));
      init.gpuDevice.addEventListener('uncapturederror', (event) => {
        const error = (event as GPUUncapturedErrorEvent).error;
        this.kernelErrors.push(new KernelError(`uncaptured WebGPU error: ${error.message}`, 'unknown'));
      });
    }
  }

  /** Adapter description and why this device was chosen. */
  get info(): DeviceInfo {
    return this.deviceInfo;
  }

  /** @internal The CPU device is one object; its reason tells the latest way it was chosen. */
  setReason(reason: string): void {
    this.deviceInfo = { ...this.deviceInfo, reason };
  }

  get isGpu(): boolean {
    return this.kind === 'gpu';
  }

  get isLost(): boolean {
    return this.lostReason !== undefined;
  }

  /** The raw GPUDevice (throws on the CPU device or after loss). */
  get gpu(): GPUDevice {
    this.assertUsable();
    if (!this.gpuDevice) throw new DeviceLostError('the CPU device has no GPUDevice');
    return this.gpuDevice;
  }

  get pool(): BufferPool {
    this.assertUsable();
    if (!this.bufferPool) throw new DeviceLostError('the CPU device has no buffer pool');
    return this.bufferPool;
  }

  get pipelines(): PipelineCache {
    return pipelineCacheFor(this.gpu);
  }

  /** Throws DeviceLostError once the GPU device is gone. */
  assertUsable(): void {
    if (this.lostReason !== undefined) {
      throw new DeviceLostError(
        `the WebGPU device (${this.info.adapter}) was lost: ${this.lostReason}. Create a new one with createDevice(); tensors on the old device cannot be used.`,
      );
    }
  }

  /** Called with the reason when the GPU device is lost or destroyed. Returns an unsubscribe function. */
  onLost(listener: (reason: string) => void): () => void {
    this.lostListeners.add(listener);
    return () => this.lostListeners.delete(listener);
  }

  private markLost(reason: string): void {
    if (this.lostReason !== undefined) return;
    this.lostReason = reason;
    this.encoder = undefined;
    this.bufferPool?.invalidate();
    if (this.gpuDevice) pipelineCacheFor(this.gpuDevice).invalidate();
    for (const listener of this.lostListeners) listener(reason);
  }

  /** The shared command encoder that ops record into. */
  commandEncoder(): GPUCommandEncoder {
    this.assertUsable();
    if (!this.encoder) this.encoder = this.gpu.createCommandEncoder({ label: 'webattn ops' });
    return this.encoder;
  }

  /**
   * Runs `record` (pipeline, bind group and dispatch creation of one kernel). In debug mode it runs inside
   * validation and out-of-memory error scopes and is submitted on its own; a failure is reported by `sync()` as a
   * KernelError naming the kernel. Outside debug mode it just runs `record`.
   */
  kernelScope<T>(kernel: string, record: () => T): T {
    if (!this.debug || this.scopeDepth > 0) return record();
    const gpu = this.gpu;
    gpu.pushErrorScope('out-of-memory');
    gpu.pushErrorScope('validation');
    this.scopeDepth++;
    try {
      return record();
    } finally {
      this.scopeDepth--;
      this.submit();
      for (let scope = 0; scope < 2; scope++) {
        this.pendingScopes.push(
          gpu.popErrorScope().then((error) => {
            if (error) this.kernelErrors.push(new KernelError(`kernel ${kernel}: ${error.message}`, kernel));
          }),
        );
      }
    }
  }

  /** Records one compute dispatch into the shared encoder (inside `kernelScope` in debug mode). */
  dispatch(
    kernel: string,
    pipeline: GPUComputePipeline,
    bindGroups: readonly GPUBindGroup[],
    workgroups: readonly [number, number?, number?],
  ): void {
    this.kernelScope(kernel, () => {
      const timestampWrites = this.dispatchProfile?.next(kernel);
      const pass = this.commandEncoder().beginComputePass(timestampWrites ? { label: kernel, timestampWrites } : { label: kernel });
      pass.setPipeline(pipeline);
      bindGroups.forEach((group, index) => pass.setBindGroup(index, group));
      pass.dispatchWorkgroups(workgroups[0], workgroups[1] ?? 1, workgroups[2] ?? 1);
      pass.end();
      this.pendingDispatches++;
    });
    if (this.pendingDispatches >= MAX_PENDING_DISPATCHES && this.submitsHeld === 0) this.submit();
  }

  /**
   * Runs `record` without the automatic submit every MAX_PENDING_DISPATCHES dispatches, so that everything it
   * records reaches the GPU in one submit: GPU timestamps around it then time the GPU's work alone, never a GPU
   * waiting for the host to record the next dispatches. Buffers released meanwhile become reusable only after that
   * submit, so memory adds up over what `record` does. (Debug mode still submits each kernel on its own.)
   */
  withSubmitsHeld<T>(record: () => T): T {
    this.submitsHeld++;
    try {
      return record();
    } finally {
      this.submitsHeld--;
    }
  }

  /**
   * Runs `record` with the GPU time of each dispatch it records (dispatch-profile.ts; devices with 'timestamp-query'),
   * waits for the GPU and returns what `record` returned with the dispatches' kernels and milliseconds, in order. The
   * first `capacity` dispatches are timed (at most MAX_PROFILED_DISPATCHES); `untimed` counts the rest.
   */
  async profileDispatches<T>(record: () => T, capacity = MAX_PROFILED_DISPATCHES): Promise<{ result: T; dispatches: DispatchTime[]; untimed: number }> {
    if (!this.caps.timestampQuery) {
      throw new InvalidArgumentError(
        `profileDispatches needs GPU timestamps ('timestamp-query'), which ${this.info.adapter} lacks; time whole calls with createCallSampler(device, 'wall-clock') instead`,
      );
    }
    if (this.dispatchProfile) throw new InvalidArgumentError('profileDispatches: a profile is already open on this device; await it before starting another');
    if (!Number.isInteger(capacity) || capacity < 1 || capacity > MAX_PROFILED_DISPATCHES) {
      throw new InvalidArgumentError(`profileDispatches: capacity must be an integer in [1, ${MAX_PROFILED_DISPATCHES}], got ${capacity}`);
    }
    const profile = new DispatchProfile(this.gpu, capacity);
    this.dispatchProfile = profile;
    let outcome: { readonly result: T } | { readonly error: unknown };
    try {
      outcome = { result: record() };
    } catch (error) {
      outcome = { error };
    } finally {
      this.dispatchProfile = undefined;
    }
    // Passes recorded before a throw still write the query set: it is destroyed only after they ran.
    const times = profile.resolve(this.commandEncoder());
    try {
      await this.sync();
      if ('error' in outcome) throw outcome.error;
      return { result: outcome.result, dispatches: await times.read(), untimed: profile.untimed };
    } finally {
      times.destroy();
    }
  }

  /** Submits the recorded commands (if any); pooled buffers released before this become reusable. */
  submit(): void {
    if (this.kind === 'cpu' || this.isLost) return;
    const encoder = this.encoder;
    this.encoder = undefined;
    this.pendingDispatches = 0;
    if (encoder) this.gpu.queue.submit([encoder.finish()]);
    this.bufferPool?.afterSubmit();
  }

  /** Submits and waits until the GPU is idle; throws the first kernel error seen (debug mode names the kernel). */
  async sync(): Promise<void> {
    if (this.kind === 'cpu') return;
    this.assertUsable();
    this.submit();
    await this.gpu.queue.onSubmittedWorkDone();
    const scopes = this.pendingScopes;
    this.pendingScopes = [];
    await Promise.all(scopes);
    this.assertUsable();
    const error = this.kernelErrors.shift();
    if (error) {
      this.kernelErrors.length = 0;
      throw error;
    }
  }

  /**
   * Destroys the GPU device (its buffers go with it) and lets Node exit. The device releases its hold on the Dawn
   * instance (which keeps Node alive while referenced) only after it has reported its loss and the callbacks still
   * pending on it have run: released at once, the garbage collector tore the instance down under them, and Dawn
   * aborted the process (std::system_error, futex and mutex assertions; about 1 run in 4 of the device-loss test on
   * lavapipe). Node devices also share one instance (`sharedDawn`), so that destroying one never tears down the
   * instance under another's pending work (the same abort, rarer, on a loaded machine).
   */
  destroy(): void {
    const hold = this.gpuHold;
    this.gpuHold = undefined;
    const gpu = this.gpuDevice;
    if (!gpu) return;
    if (!this.isLost) {
      this.markLost('destroyed by device.destroy()');
      gpu.destroy();
    }
    if (hold) void gpu.lost.then(() => new Promise((settle) => setTimeout(settle, 0))).then(() => hold.release());
  }
}

let cpuSingleton: Device | undefined;

/**
 * The CPU device: tensors in typed arrays, every op in plain TypeScript. There is one CPU device, so tensors made
 * anywhere on the CPU can be combined; a `reason` (e.g. why createDevice fell back) updates its `info.reason`.
 */
export function cpuDevice(reason?: string): Device {
  if (!cpuSingleton) {
    cpuSingleton = new Device({
      kind: 'cpu',
      info: {
        kind: 'cpu',
        adapter: 'cpu',
        vendor: 'cpu',
        architecture: 'cpu',
        description: 'JavaScript',
        reason: reason ?? 'requested with prefer: "cpu"',
      },
      caps: CPU_CAPS,
    });
  } else if (reason !== undefined) {
    cpuSingleton.setReason(reason);
  }
  return cpuSingleton;
}

/** The Dawn toggles `createDevice` passes in Node unless `dawnFeatures` says otherwise. */
export const DEFAULT_DAWN_FEATURES: readonly string[] = ['allow_unsafe_apis', 'vulkan_enable_f16_on_nvidia'];
/** The Dawn toggles `createDevice` turns off in Node unless `disabledDawnFeatures` says otherwise. */
export const DEFAULT_DISABLED_DAWN_FEATURES: readonly string[] = ['timestamp_quantization'];

/** A device's hold on the GPU object it came from; `release()` once, when the device is done with it. */
interface GpuHold {
  release(): void;
}

/** Browsers' navigator.gpu and a GPU given in the options need no holding. */
const NO_HOLD: GpuHold = { release() {} };

/**
 * The Dawn instances (`webgpu.create()`, one per set of toggles) that Node devices share, each with the number of
 * devices holding it; the last device to release one drops it, so that Node can exit.
 */
const sharedDawn = new Map<string, { gpu: GPU; holders: number }>();

/** @internal How many devices hold each shared Dawn instance (for tests). */
export function dawnInstanceHolders(): number[] {
  return [...sharedDawn.values()].map((shared) => shared.holders);
}

function holdDawn(toggles: string, create: () => GPU): { gpu: GPU; hold: GpuHold } {
  let shared = sharedDawn.get(toggles);
  if (!shared) {
    shared = { gpu: create(), holders: 0 };
    sharedDawn.set(toggles, shared);
  }
  shared.holders++;
  const held = shared;
  let released = false;
  const hold = {
    release() {
      if (released) return;
      released = true;
      if (--held.holders === 0) sharedDawn.delete(toggles);
    },
  };
  return { gpu: held.gpu, hold };
}

async function findGpu(options: CreateDeviceOptions): Promise<{ gpu: GPU; hold: GpuHold } | string> {
  if (options.gpu) return { gpu: options.gpu, hold: NO_HOLD };
  const nav = (globalThis as { navigator?: { gpu?: GPU } }).navigator;
  if (nav?.gpu) return { gpu: nav.gpu, hold: NO_HOLD };
  const isNode = typeof process !== 'undefined' && !!process.versions?.node;
  if (!isNode) return 'this browser has no navigator.gpu (WebGPU is not available or not enabled)';
  try {
    const moduleName = 'webgpu';
    const webgpu = (await import(/* @vite-ignore */ moduleName)) as {
      create: (flags: string[]) => GPU;
      globals: Record<string, unknown>;
    };
    for (const [name, value] of Object.entries(webgpu.globals)) {
      if (!(name in globalThis)) (globalThis as Record<string, unknown>)[name] = value;
    }
    const disabled = options.disabledDawnFeatures ?? DEFAULT_DISABLED_DAWN_FEATURES;
    const flags = [
      `enable-dawn-features=${(options.dawnFeatures ?? DEFAULT_DAWN_FEATURES).join(',')}`,
      ...(disabled.length > 0 ? [`disable-dawn-features=${disabled.join(',')}`] : []),
    ];
    return holdDawn(flags.join(' '), () => webgpu.create(flags));
  } catch (error) {
    return `the optional 'webgpu' package could not be loaded in Node (${(error as Error).message}); install it with 'pnpm add webgpu'`;
  }
}

function adapterName(info: GPUAdapterInfo): { adapter: string; vendor: string; architecture: string; description: string } {
  const vendor = info.vendor ?? '';
  const architecture = info.architecture ?? '';
  const description = info.description ?? '';
  const head = [vendor, architecture].filter(Boolean).join(' ');
  const adapter = description ? (head ? `${head} (${description})` : description) : head || 'unknown adapter';
  return { adapter, vendor, architecture, description };
}

/**
 * Opens a compute device. In browsers it uses navigator.gpu; in Node the optional `webgpu` package (Dawn) with
 * the toggles that expose shader-f16 on NVIDIA and subgroup matrices. Every optional feature the adapter has is
 * requested, and the limits kernels need are raised to the adapter's maximum. Without an adapter (or with
 * `prefer: 'cpu'`) it returns the CPU device, and `info.reason` says why.
 */
export async function createDevice(options: CreateDeviceOptions = {}): Promise<Device> {
  if (options.prefer === 'cpu') return cpuDevice('requested with prefer: "cpu"');
  const found = await findGpu(options);
  const fallback = (reason: string): Device => {
    if (options.requireGpu) throw new NoAdapterError(`no WebGPU device: ${reason}`);
    return cpuDevice(`fell back to the CPU: ${reason}`);
  };
  if (typeof found === 'string') return fallback(found);
  try {
    const device = await openGpuDevice(found.gpu, found.hold, options);
    if (typeof device === 'string') {
      found.hold.release();
      return fallback(device);
    }
    return device;
  } catch (error) {
    found.hold.release();
    throw error;
  }
}

/** The device on `gpu`'s adapter (holding `hold` until destroyed), or why there is none. */
async function openGpuDevice(gpu: GPU, hold: GpuHold, options: CreateDeviceOptions): Promise<Device | string> {
  const adapter = await gpu.requestAdapter(options.powerPreference ? { powerPreference: options.powerPreference } : undefined);
  if (!adapter) return 'requestAdapter() returned null (no WebGPU adapter on this machine)';
  const requiredFeatures = OPTIONAL_FEATURES.filter((feature) => adapter.features.has(feature)) as GPUFeatureName[];
  const requiredLimits: Record<string, number> = {};
  for (const name of LIMITS_WANTED) {
    const value = (adapter.limits as unknown as Record<string, number | undefined>)[name];
    if (typeof value === 'number') requiredLimits[name] = value;
  }
  const gpuDevice = await adapter.requestDevice({ requiredFeatures, requiredLimits, label: 'webattn' });
  const info = adapter.info;
  const rawConfigs = (info as unknown as { subgroupMatrixConfigs?: readonly SubgroupMatrixConfig[] })
    .subgroupMatrixConfigs;
  const limits = gpuDevice.limits;
  const caps: DeviceCaps = {
    features: new Set(gpuDevice.features),
    shaderF16: gpuDevice.features.has('shader-f16'),
    subgroups: gpuDevice.features.has('subgroups'),
    timestampQuery: gpuDevice.features.has('timestamp-query'),
    subgroupMatrix: gpuDevice.features.has('chromium-experimental-subgroup-matrix' as GPUFeatureName),
    subgroupMinSize: (info as unknown as { subgroupMinSize?: number }).subgroupMinSize ?? 0,
    subgroupMaxSize: (info as unknown as { subgroupMaxSize?: number }).subgroupMaxSize ?? 0,
    subgroupMatrixConfigs: (rawConfigs ?? []).map((config) => ({
      componentType: config.componentType,
      resultComponentType: config.resultComponentType,
      M: config.M,
      N: config.N,
      K: config.K,
    })),
    maxComputeWorkgroupStorageSize: limits.maxComputeWorkgroupStorageSize,
    maxComputeInvocationsPerWorkgroup: limits.maxComputeInvocationsPerWorkgroup,
    maxComputeWorkgroupSizeX: limits.maxComputeWorkgroupSizeX,
    maxComputeWorkgroupsPerDimension: limits.maxComputeWorkgroupsPerDimension,
    maxStorageBufferBindingSize: limits.maxStorageBufferBindingSize,
    maxBufferSize: limits.maxBufferSize,
    maxStorageBuffersPerShaderStage: limits.maxStorageBuffersPerShaderStage,
  };
  return new Device({
    kind: 'gpu',
    info: { kind: 'gpu', ...adapterName(info), reason: 'WebGPU adapter found' },
    caps,
    gpuDevice,
    gpuHold: hold,
    debug: options.debug ?? false,
  });
}
