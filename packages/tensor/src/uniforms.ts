import { InvalidArgumentError } from './errors';

/**
 * Uniform layouts computed in one place. A layout is an ordered list of named 32-bit scalars; its WGSL struct
 * and its byte packing both come from that list, so no kernel hand-counts offsets.
 */
export type UniformScalar = 'u32' | 'i32' | 'f32';

export interface UniformLayout<Name extends string = string> {
  readonly fields: readonly (readonly [Name, UniformScalar])[];
  /** Bytes, rounded up to 16 as uniform buffers want. */
  readonly byteLength: number;
  /** `struct NAME { a: u32, b: f32, ... }` for the kernel's source. */
  wgslStruct(structName: string): string;
  /** Packs values (every field required) into a buffer ready for `writeBuffer`. */
  pack(values: Readonly<Record<Name, number>>): ArrayBuffer;
}

export function uniformLayout<Name extends string>(
  fields: readonly (readonly [Name, UniformScalar])[],
): UniformLayout<Name> {
  const byteLength = Math.max(16, Math.ceil((fields.length * 4) / 16) * 16);
  return {
    fields,
    byteLength,
    wgslStruct(structName) {
      return `struct ${structName} {\n${fields.map(([name, type]) => `  ${name}: ${type},`).join('\n')}\n}`;
    },
    pack(values) {
      const buffer = new ArrayBuffer(byteLength);
      const view = new DataView(buffer);
      fields.forEach(([name, type], index) => {
        const value = values[name];
        if (typeof value !== 'number' || Number.isNaN(value) && type !== 'f32') {
          throw new InvalidArgumentError(`uniform ${name} needs a number, got ${String(value)}`);
        }
        const offset = index * 4;
        if (type === 'f32') view.setFloat32(offset, value, true);
        else if (type === 'i32') {
          if (!Number.isInteger(value) || value < -0x80000000 || value > 0x7fffffff) {
            throw new InvalidArgumentError(`uniform ${name} (i32) out of range: ${value}`);
          }
          view.setInt32(offset, value, true);
        } else {
          if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) {
            throw new InvalidArgumentError(`uniform ${name} (u32) out of range: ${value}`);
          }
          view.setUint32(offset, value, true);
        }
      });
      return buffer;
    },
  };
}
