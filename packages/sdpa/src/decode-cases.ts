/**
 * Conformance cases for decode shapes (few queries over ≥ 1024 keys): the shared suite keeps lengths small, so
 * none of its cases reaches the split-KV ('efficient') backend. These follow the shared case format
 * (AttentionCase of @webattn/reference/testing) and are checked by the same tolerance rule.
 */
import type { AttentionCase, AttentionCaseInputs } from '@webattn/reference/testing';
import { randomValues } from '@webattn/tensor/testing';

function decodeCase(spec: {
  name: string;
  batch: number;
  heads: number;
  kvHeads: number;
  queryLength: number;
  keyLength: number;
  headDim: number;
  keyLengths?: number[];
  causal?: boolean;
}): AttentionCase {
  return {
    name: spec.name,
    dtype: 'f32',
    backward: true,
    exercises: [
      'backward',
      ...(spec.kvHeads !== spec.heads ? (['gqa'] as const) : []),
      ...(spec.keyLengths ? (['key-lengths'] as const) : []),
      ...(spec.causal ? (['causal-bottom-right'] as const) : []),
    ],
    generate(seed): AttentionCaseInputs {
      let stream = 0;
      const values = (count: number) => randomValues(count, (seed + 0x51ed * ++stream) >>> 0).map(Math.fround);
      const tensorOf = (heads: number, length: number) => {
        const shape = [spec.batch, heads, length, spec.headDim];
        return { data: values(shape.reduce((a, b) => a * b)), shape, dtype: 'f32' as const };
      };
      return {
        dtype: 'f32',
        q: tensorOf(spec.heads, spec.queryLength),
        k: tensorOf(spec.kvHeads, spec.keyLength),
        v: tensorOf(spec.kvHeads, spec.keyLength),
        gradOut: tensorOf(spec.heads, spec.queryLength),
        memoryOrder: 'bhld',
        options: {
          enableGqa: spec.kvHeads !== spec.heads,
          ...(spec.keyLengths ? { keyLengths: spec.keyLengths } : {}),
          ...(spec.causal ? { isCausal: true, causalAlignment: 'bottom-right' as const } : {}),
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
];
