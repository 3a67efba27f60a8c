/**
 * Test-only helpers: decoding the golden fixtures (PyTorch outputs) and opening a device for the tests.
 * Shared fixtures live in ../shared/fixtures beside the repository; local ones in src/__fixtures__
 * (made by scripts/export-torch-fixtures.py).
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tensor, type Device, type Tensor } from '@webattn/tensor';

export interface FixtureTensor {
  readonly shape: number[];
  readonly dtype: 'f32' | 'f64' | 'bool' | 'i32';
  readonly b64: string;
}

export interface Fixture {
  readonly name: string;
  readonly op: string;
  readonly params: Record<string, unknown>;
  readonly inputs: Record<string, FixtureTensor>;
  readonly expected: Record<string, FixtureTensor | unknown>;
  readonly state_dict?: Record<string, FixtureTensor>;
}

const here = dirname(fileURLToPath(import.meta.url));
export const LOCAL_FIXTURES = resolve(here, '__fixtures__');
/** <repo>/../shared/fixtures/torch-sdpa */
export const SHARED_FIXTURES = resolve(here, '../../../../shared/fixtures/torch-sdpa');

/** The values of a fixture tensor (f64 stays f64, bool and i32 as numbers). */
export function decode(entry: FixtureTensor): Float64Array | Float32Array | Uint8Array | Int32Array {
  const bytes = Buffer.from(entry.b64, 'base64');
  const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
  switch (entry.dtype) {
    case 'f64':
      return new Float64Array(buffer);
    case 'f32':
      return new Float32Array(buffer);
    case 'bool':
      return new Uint8Array(buffer);
    case 'i32':
      return new Int32Array(buffer);
  }
}

/** A fixture tensor on `device` (f32, or bool for bool entries). */
export function toTensor(device: Device, entry: FixtureTensor): Tensor {
  const values = decode(entry);
  if (entry.dtype === 'bool') return tensor(device, values as Uint8Array, entry.shape, { dtype: 'bool' });
  return tensor(device, Float32Array.from(values as ArrayLike<number>), entry.shape);
}

/** A state dict of host tensors from a fixture's state_dict. */
export function hostStateDict(entries: Record<string, FixtureTensor>): Record<string, { shape: number[]; data: Float32Array }> {
  return Object.fromEntries(
    Object.entries(entries).map(([key, entry]) => [key, { shape: entry.shape, data: Float32Array.from(decode(entry) as Float32Array) }]),
  );
}

/**
 * A shared PyTorch fixture by file name, or null when ../shared is missing (a checkout without it). Under
 * CI=true a missing fixture throws: the comparison with PyTorch must not silently disappear.
 */
export function sharedFixture(name: string): Fixture | null {
  const path = resolve(SHARED_FIXTURES, name);
  if (!existsSync(path)) {
    if (process.env.CI === 'true') throw new Error(`fixture ${path} is missing (CI=true): the shared fixtures must be checked out beside the repo`);
    console.warn(`[webattn] skipping PyTorch comparison: ${path} not found`);
    return null;
  }
  return JSON.parse(readFileSync(path, 'utf8')) as Fixture;
}

export function localFixtureCases(): Fixture[] {
  return (JSON.parse(readFileSync(resolve(LOCAL_FIXTURES, 'torch-nn.json'), 'utf8')) as { cases: Fixture[] }).cases;
}

export function localFixtureBytes(name: string): Uint8Array {
  return new Uint8Array(readFileSync(resolve(LOCAL_FIXTURES, name)));
}

export function localFixtureJson<T>(name: string): T {
  return JSON.parse(readFileSync(resolve(LOCAL_FIXTURES, name), 'utf8')) as T;
}

/** Max |a − b| over all elements, with the index (NaN counts as Infinity). */
export function maxError(actual: ArrayLike<number>, expected: ArrayLike<number>): { error: number; index: number } {
  if (actual.length !== expected.length) throw new Error(`length ${actual.length} vs expected ${expected.length}`);
  let error = 0;
  let index = -1;
  for (let i = 0; i < actual.length; i++) {
    const d = Math.abs(actual[i]! - expected[i]!);
    const e = Number.isNaN(d) ? Infinity : d;
    if (e > error) {
      error = e;
      index = i;
    }
  }
  return { error, index };
}
