/**
 * Conformance cases for decode shapes (few queries over ≥ 1024 keys): the shared suite keeps lengths small, so
 * none of its cases reaches the split-KV ('efficient') backend. These follow the shared case format
 * (AttentionCase of @webattn/reference/testing) and are checked by the same tolerance rule.
 */
import type { AttentionCase, AttentionCaseInputs, AttentionFeature } from '@webattn/reference/testing';
import { roundToHalf } from '@webattn/tensor';
import { randomValues } from '@webattn/tensor/testing';

interface DecodeSpec {
  name: string;
  dtype?: 'f32' | 'f16';
  batch: number;
  heads: number;
  kvHeads: number;
  queryLength: number;
  keyLength: number;
  headDim: number;
  keyLengths?: number[];
  causal?: boolean;
  window?: [number, number];
  softcap?: number;
  /** A bool key-padding mask [B, 1, 1, S] (about 1 key in 8 hidden, never all). */
  boolMask?: boolean;
}

function decodeCase(spec: DecodeSpec): AttentionCase {
  const dtype = spec.dtype ?? 'f32';
  const exercises: AttentionFeature[] = ['backward'];
  if (dtype === 'f16') exercises.push('f16');
  if (spec.kvHeads !== spec.heads) exercises.push('gqa');
  if (spec.keyLengths) exercises.push('key-lengths');
  if (spec.causal) exercises.push('causal-bottom-right');
  if (spec.window) exercises.push('window');
  if (spec.softcap) exercises.push('softcap');
  if (spec.boolMask) exercises.push('bool-mask', 'mask-broadcast');
  return {
    name: spec.name,
    dtype,
    backward: true,
    exercises,
    generate(seed): AttentionCaseInputs {
      let stream = 0;
      const round = dtype === 'f16' ? roundToHalf : Math.fround;
      const values = (count: number) => randomValues(count, (seed + 0x51ed * ++stream) >>> 0).map(round);
      const tensorOf = (heads: number, length: number) => {
        const shape = [spec.batch, heads, length, spec.headDim];
        return { data: values(shape.reduce((a, b) => a * b)), shape, dtype };
      };
      const mask = spec.boolMask
        ? {
            data: Uint8Array.from(values(spec.batch * spec.keyLength), (x, j) => (j % spec.keyLength === 0 || x > -0.75 ? 1 : 0)),
            shape: [spec.batch, 1, 1, spec.keyLength],
            dtype: 'bool' as const,
          }
        : undefined;
      return {
        dtype,
        q: tensorOf(spec.heads, spec.queryLength),
        k: tensorOf(spec.kvHeads, spec.keyLength),
        v: tensorOf(spec.kvHeads, spec.keyLength),
        gradOut: tensorOf(spec.heads, spec.queryLength),
        memoryOrder: 'bhld',
        options: {
          enableGqa: spec.kvHeads !== spec.heads,
          ...(spec.keyLengths ? { keyLengths: spec.keyLengths } : {}),
          ...(spec.causal || spec.window ? { causalAlignment: 'bottom-right' as const } : {}),
          ...(spec.causal ? { isCausal: true } : {}),
          ...(spec.window ? { window: spec.window } : {}),
          ...(spec.softcap ? { softcap: spec.softcap } : {}),
          ...(mask ? { attnMask: mask } : {}),
        },
      };
    },
  };
}

export const DECODE_CASES: readonly AttentionCase[] = [
  decodeCase({ name: 'decode: L1 S1024 D64, GQA 4 on 2', batch: 1, heads: 4, kvHeads: 2, queryLength: 1, keyLength: 1024, headDim: 64 }),
  decodeCase({
    name: 'decode: L5 S1031 D40, key lengths [1031, 700], causal bottom-right',
    batch: 2,
    heads: 2,
    kvHeads: 2,
    queryLength: 5,
    keyLength: 1031,
    headDim: 40,
    keyLengths: [1031, 700],
    causal: true,
  }),
  decodeCase({
    name: 'decode f16: L2 S1024 D59, bool mask [B, 1, 1, S], window (300, 0), softcap 20',
    dtype: 'f16',
    batch: 1,
    heads: 2,
    kvHeads: 1,
    queryLength: 2,
    keyLength: 1024,
    headDim: 59,
    boolMask: true,
    window: [300, 0],
    softcap: 20,
  }),
];
