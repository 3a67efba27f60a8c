/**
 * The safetensors format (Hugging Face; what `safetensors.torch.save_file(model.state_dict(), path)` writes):
 * an unsigned 64-bit little-endian header length N, N bytes of JSON
 * `{ name: { dtype, shape, data_offsets: [begin, end] }, "__metadata__"?: { string: string } }`, then the raw
 * little-endian tensor bytes, offsets relative to the end of the header. Small enough to parse here rather than
 * add a dependency (no well-kept JavaScript parser with types exists); the format's own rules are checked.
 */
import { InvalidArgumentError, fromHalfBits } from '@webattn/tensor';
import type { HostTensor } from './assign';

export type SafetensorsDType = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

export interface SafetensorsEntry extends HostTensor {
  /** The stored type; `data` holds the values widened to float32 (or float64 for F64 and I64). */
  readonly dtype: SafetensorsDType;
  readonly data: Float32Array | Float64Array;
}

export interface SafetensorsFile {
  readonly tensors: Record<string, SafetensorsEntry>;
  readonly metadata: Record<string, string>;
}

const BYTES: Record<SafetensorsDType, number> = { F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1 };

/** The header is bounded so that a corrupt length cannot make us allocate gigabytes (as the reference parser). */
const MAX_HEADER_BYTES = 100_000_000;

export class SafetensorsError extends InvalidArgumentError {
  override name = 'SafetensorsError';
}

/** Parses a safetensors file's bytes into host tensors. */
export function parseSafetensors(bytes: ArrayBuffer | Uint8Array): SafetensorsFile {
  const view = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  if (view.byteLength < 8) throw new SafetensorsError(`safetensors: ${view.byteLength} bytes is shorter than the 8-byte header length`);
  const data = new DataView(view.buffer, view.byteOffset, view.byteLength);
  const headerLength = Number(data.getBigUint64(0, true));
  if (headerLength > MAX_HEADER_BYTES || 8 + headerLength > view.byteLength) {
    throw new SafetensorsError(
      `safetensors: header length ${headerLength} does not fit the ${view.byteLength}-byte file (is this a safetensors file?)`,
    );
  }
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(new TextDecoder().decode(view.subarray(8, 8 + headerLength))) as Record<string, unknown>;
  } catch (error) {
    throw new SafetensorsError(`safetensors: the header is not valid JSON (${(error as Error).message})`);
  }
  const body = view.subarray(8 + headerLength);
  const tensors: Record<string, SafetensorsEntry> = {};
  let metadata: Record<string, string> = {};
  for (const [name, value] of Object.entries(header)) {
    if (name === '__metadata__') {
      metadata = value as Record<string, string>;
      continue;
    }
    tensors[name] = readEntry(name, value, body);
  }
  return { tensors, metadata };
}

function readEntry(name: string, value: unknown, body: Uint8Array): SafetensorsEntry {
  const entry = value as { dtype?: string; shape?: number[]; data_offsets?: [number, number] };
  const dtype = entry.dtype as SafetensorsDType;
  if (!(dtype in BYTES)) {
    throw new SafetensorsError(`safetensors: ${name} has dtype ${entry.dtype}; supported: ${Object.keys(BYTES).join(', ')}`);
  }
  const shape = entry.shape;
  if (!Array.isArray(shape) || shape.some((size) => !Number.isInteger(size) || size < 0)) {
    throw new SafetensorsError(`safetensors: ${name} has an invalid shape ${JSON.stringify(shape)}`);
  }
  const [begin, end] = entry.data_offsets ?? [NaN, NaN];
  const count = shape.reduce((a, b) => a * b, 1);
  if (!Number.isInteger(begin) || !Number.isInteger(end) || begin < 0 || end > body.byteLength || end - begin !== count * BYTES[dtype]) {
    throw new SafetensorsError(
      `safetensors: ${name} (${dtype} ${JSON.stringify(shape)}, ${count * BYTES[dtype]} bytes) has data_offsets ${JSON.stringify(entry.data_offsets)} outside the ${body.byteLength}-byte data section`,
    );
  }
  const raw = new DataView(body.buffer, body.byteOffset + begin, end - begin);
  const wide = dtype === 'F64' || dtype === 'I64';
  const out = wide ? new Float64Array(count) : new Float32Array(count);
  const read: (offset: number) => number = {
    F64: (o: number) => raw.getFloat64(o, true),
    F32: (o: number) => raw.getFloat32(o, true),
    F16: (o: number) => fromHalfBits(raw.getUint16(o, true)),
    BF16: (o: number) => bfloat16(raw.getUint16(o, true)),
    I64: (o: number) => Number(raw.getBigInt64(o, true)),
    I32: (o: number) => raw.getInt32(o, true),
    I16: (o: number) => raw.getInt16(o, true),
    I8: (o: number) => raw.getInt8(o),
    U8: (o: number) => raw.getUint8(o),
    BOOL: (o: number) => (raw.getUint8(o) ? 1 : 0),
  }[dtype];
  for (let i = 0; i < count; i++) out[i] = read(i * BYTES[dtype]);
  return { dtype, shape, data: out };
}

const bfloatScratch = new DataView(new ArrayBuffer(4));
function bfloat16(bits: number): number {
  bfloatScratch.setUint32(0, bits << 16, true);
  return bfloatScratch.getFloat32(0, true);
}

/** Writes host tensors as a safetensors file (F32, keys sorted as the reference writer does). */
export function serializeSafetensors(
  tensors: Record<string, HostTensor>,
  metadata: Record<string, string> = {},
): Uint8Array {
  const names = Object.keys(tensors).sort();
  const header: Record<string, unknown> = {};
  let offset = 0;
  for (const name of names) {
    const tensor = tensors[name]!;
    const bytes = tensor.data.length * 4;
    header[name] = { dtype: 'F32', shape: [...tensor.shape], data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  if (Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let text = JSON.stringify(header);
  text += ' '.repeat((8 - ((new TextEncoder().encode(text).byteLength) % 8)) % 8); // align the data to 8 bytes
  const headerBytes = new TextEncoder().encode(text);
  const out = new Uint8Array(8 + headerBytes.byteLength + offset);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(headerBytes.byteLength), true);
  out.set(headerBytes, 8);
  let at = 8 + headerBytes.byteLength;
  for (const name of names) {
    const values = tensors[name]!.data;
    for (let i = 0; i < values.length; i++, at += 4) view.setFloat32(at, values[i]!, true);
  }
  return out;
}
