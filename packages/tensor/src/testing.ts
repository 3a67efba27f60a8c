/**
 * Test helpers shared by every package's tests (subpath `@webattn/tensor/testing`).
 *
 * `openTestDevice()` opens a real WebGPU device (Dawn in Node, lavapipe on CPU-only machines). Without an
 * adapter it returns null so GPU suites can `describe.skipIf(!device)` — unless WEBATTN_REQUIRE_GPU=1 (set by CI),
 * which turns a missing adapter into a thrown error: GPU tests never skip silently in CI.
 */
import { createDevice, type Device } from './device';
import { NoAdapterError } from './errors';

const env = (name: string): string | undefined =>
  typeof process !== 'undefined' ? (process.env?.[name] ?? undefined) : undefined;

export function gpuRequired(): boolean {
  return env('WEBATTN_REQUIRE_GPU') === '1';
}

export async function openTestDevice(options: { debug?: boolean } = {}): Promise<Device | null> {
  const device = await createDevice({ debug: options.debug ?? false });
  if (device.isGpu) {
    if (device.info.architecture === 'software') yieldMainThreadToDriver();
    return device;
  }
  if (gpuRequired()) {
    throw new NoAdapterError(`WEBATTN_REQUIRE_GPU=1 but no WebGPU adapter was found: ${device.info.reason}`);
  }
  console.warn(`[webattn] GPU tests skipped: ${device.info.reason}`);
  return null;
}

/**
 * On an adapter that runs on the CPU (Mesa's lavapipe), Dawn in Node keeps the JS thread polling while GPU work is
 * pending, and the driver compiles each kernel on its queue thread when the kernel first runs: lowering the polling
 * thread's priority lets test files run side by side on two cores (two kernels compiled at once; 1.5x on a cold
 * shader cache). Linux applies it to the calling thread only; the driver's threads started with the device keep theirs.
 */
function yieldMainThreadToDriver(): void {
  const os = (globalThis as { process?: { getBuiltinModule?: (name: string) => unknown } }).process?.getBuiltinModule?.('node:os') as
    | { setPriority(priority: number): void; getPriority(): number }
    | undefined;
  try {
    if (os && os.getPriority() < 19) os.setPriority(19);
  } catch {
    // Not permitted here: the tests run as before, only slower.
  }
}

/**
 * Runs `fn` inside validation and out-of-memory error scopes and fails if either caught anything, so a test
 * cannot pass while WebGPU reported an error.
 */
export async function expectNoGpuErrors<T>(device: Device, fn: () => T | Promise<T>): Promise<T> {
  const gpu = device.gpu;
  gpu.pushErrorScope('out-of-memory');
  gpu.pushErrorScope('validation');
  let result: T;
  try {
    result = await fn();
    device.submit();
  } finally {
    const validation = await gpu.popErrorScope();
    const memory = await gpu.popErrorScope();
    const error = validation ?? memory;
    if (error) throw new Error(`WebGPU reported an error during the test: ${error.message}`);
  }
  await device.sync();
  return result!;
}

/** Deterministic pseudo-random floats in [lo, hi) for test inputs (use a fresh seed per test). */
export function randomValues(count: number, seed: number, lo = -1, hi = 1): Float32Array {
  let state = (seed * 2654435761 + 1) >>> 0;
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) {
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    out[i] = lo + ((state >>> 0) / 4294967296) * (hi - lo);
  }
  return out;
}

/** A fresh seed per call (tests draw new inputs every run; failures print the seed to replay). */
export function freshSeed(): number {
  const fromEnv = env('WEBATTN_SEED');
  if (fromEnv) return Number(fromEnv);
  return Math.floor(Math.random() * 2 ** 31);
}

/** Max absolute difference, and the index where it happens (NaN anywhere counts as Infinity). */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): { value: number; index: number } {
  if (a.length !== b.length) throw new Error(`length mismatch: ${a.length} vs ${b.length}`);
  let value = 0;
  let index = -1;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    const diff = Number.isNaN(d) ? Number.POSITIVE_INFINITY : d;
    if (diff > value) {
      value = diff;
      index = i;
    }
  }
  return { value, index };
}

/** ‖a − b‖₂ / ‖b‖₂ (b is the reference). */
export function relativeL2(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length mismatch: ${a.length} vs ${b.length}`);
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    const d = a[i]! - b[i]!;
    num += d * d;
    den += b[i]! * b[i]!;
  }
  if (Number.isNaN(num)) return Number.POSITIVE_INFINITY;
  return den === 0 ? Math.sqrt(num) : Math.sqrt(num / den);
}
