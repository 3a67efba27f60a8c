/**
 * Loading and saving a module's parameters: safetensors files (as PyTorch exports them) and JSON.
 * Both read the module's own PyTorch key names, so a torch.nn model's state_dict loads into its webattn twin.
 */
import { InvalidArgumentError } from '@webattn/tensor';
import type { HostTensor } from './assign';
import type { LoadStateDictResult, Module } from './module';
import { parseSafetensors, serializeSafetensors } from './safetensors';

/** Loads a safetensors file's tensors into the module's parameters (strict by default: keys must match). */
export function loadSafetensors(
  module: Module,
  bytes: ArrayBuffer | Uint8Array,
  options: { strict?: boolean } = {},
): LoadStateDictResult {
  return module.loadStateDict(parseSafetensors(bytes).tensors, options);
}

/** The module's parameters as a safetensors file (F32), readable by `safetensors.torch.load_file`. */
export async function saveSafetensors(module: Module, metadata: Record<string, string> = {}): Promise<Uint8Array> {
  return serializeSafetensors(await stateDictToHost(module), metadata);
}

/** A JSON weight value: numbers in row-major order, or base64 little-endian bytes (dtype f32 or f64). */
export type JsonTensor =
  | { readonly shape: readonly number[]; readonly data: readonly number[] }
  | { readonly shape: readonly number[]; readonly dtype: 'f32' | 'f64'; readonly b64: string };

/** Turns JSON weights (`{ key: { shape, data } }` or `{ key: { shape, dtype, b64 } }`) into host tensors. */
export function stateDictFromJson(json: string | Record<string, JsonTensor>): Record<string, HostTensor> {
  const parsed = (typeof json === 'string' ? JSON.parse(json) : json) as Record<string, JsonTensor>;
  const out: Record<string, HostTensor> = {};
  for (const [key, value] of Object.entries(parsed)) {
    if (!value || !Array.isArray(value.shape)) {
      throw new InvalidArgumentError(`JSON weights: ${key} needs { shape, data } or { shape, dtype, b64 }`);
    }
    const count = value.shape.reduce((a, b) => a * b, 1);
    const data = 'data' in value ? Float32Array.from(value.data) : decodeBase64(value.b64, value.dtype);
    if (data.length !== count) {
      throw new InvalidArgumentError(`JSON weights: ${key} has ${data.length} values for shape [${value.shape.join(', ')}] (${count})`);
    }
    out[key] = { shape: value.shape, data };
  }
  return out;
}

/** Loads JSON weights into the module (strict by default). */
export function loadJsonWeights(
  module: Module,
  json: string | Record<string, JsonTensor>,
  options: { strict?: boolean } = {},
): LoadStateDictResult {
  return module.loadStateDict(stateDictFromJson(json), options);
}

/** The module's parameters as JSON (`{ key: { shape, data } }`). */
export async function saveJsonWeights(module: Module): Promise<string> {
  const host = await stateDictToHost(module);
  return JSON.stringify(
    Object.fromEntries(Object.entries(host).map(([key, value]) => [key, { shape: value.shape, data: Array.from(value.data) }])),
  );
}

/** Reads every parameter back to the host (one readback per parameter). */
export async function stateDictToHost(module: Module): Promise<Record<string, HostTensor>> {
  const out: Record<string, HostTensor> = {};
  for (const [key, parameter] of Object.entries(module.stateDict())) {
    out[key] = { shape: parameter.shape, data: (await parameter.toArray()) as Float32Array };
  }
  return out;
}

function decodeBase64(text: string, dtype: 'f32' | 'f64'): Float32Array {
  const bytes = Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
  if (dtype === 'f64') return Float32Array.from(new Float64Array(bytes.buffer, 0, bytes.byteLength / 8));
  if (dtype === 'f32') return new Float32Array(bytes.buffer, 0, bytes.byteLength / 4);
  throw new InvalidArgumentError(`JSON weights: b64 dtype must be f32 or f64, got ${String(dtype)}`);
}
