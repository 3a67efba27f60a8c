/**
 * The attention conformance suite: one list of cases every backend runs (the WGSL math backend, flash, the
 * dispatcher), imported from '@webattn/reference/testing', never copied. Each case has a name, a deterministic
 * input generator (call it with a fresh seed per run and print the seed on failure), options, the features it
 * exercises (so a backend lists each skip with its reason) and whether backward applies. Expected values come
 * from the float64 oracle; tolerances from the same-precision reference (see attention-tolerance.ts).
 * Sizes stay small: the suite runs on lavapipe, a software GPU; one case is long (1025) with a small head dim.
 */
import { roundToHalf } from '@webattn/tensor';
import { randomValues } from '@webattn/tensor/testing';
import type { HostTensor } from './host-tensor';
import { ATTENTION_TOLERANCE, type AttentionToleranceRule } from './attention-tolerance';
import type { ReferenceOptions } from './reference-plan';

export type AttentionFeature =
  | 'backward'
  | 'f16'
  | 'bool-mask'
  | 'additive-mask'
  | 'mask-broadcast'
  | 'causal-top-left'
  | 'causal-bottom-right'
  | 'gqa'
  | 'window'
  | 'softcap'
  | 'key-lengths'
  | 'varlen'
  | 'fully-masked-rows'
  | 'large-logits'
  | 'dropout'
  | 'value-dim-differs'
  | 'long-sequence'
  | 'strided-layout'
  | 'weights'
  | 'custom-scale';

export interface AttentionCaseInputs {
  readonly dtype: 'f32' | 'f16';
  /** q [B, Hq, L, Dqk] (packed varlen: [totalQ, Hq, Dqk]); values exactly representable in `dtype`. */
  readonly q: HostTensor;
  readonly k: HostTensor;
  readonly v: HostTensor;
  /** The gradient of the output for backward (same shape as out). */
  readonly gradOut: HostTensor;
  /** 'blhd': q, k, v are views of [B, L, H, D] memory (strides say so); build tensors with a transpose. */
  readonly memoryOrder: 'bhld' | 'blhd';
  /** Options with plain arrays (the mask as a HostTensor with dtype 'bool', 'f32' or 'f16'). */
  readonly options: ReferenceOptions;
}

export interface AttentionCase {
  readonly name: string;
  readonly dtype: 'f32' | 'f16';
  readonly exercises: readonly AttentionFeature[];
  /** Whether the backward pass is checked too. */
  readonly backward: boolean;
  /**
   * A tolerance rule for what is computed from the probabilities (out, weights, gradients) where the default one
   * does not fit the case (the case says why). The logsumexp always uses the default rule.
   */
  readonly probabilityRule?: AttentionToleranceRule;
  /** Deterministic inputs from a seed. */
  generate(seed: number): AttentionCaseInputs;
}

interface CaseSpec {
  name: string;
  dtype?: 'f32' | 'f16';
  exercises: AttentionFeature[];
  backward?: boolean;
  probabilityRule?: AttentionToleranceRule;
  batch?: number;
  heads: number;
  kvHeads?: number;
  queryLength: number;
  keyLength: number;
  headDim: number;
  valueDim?: number;
  /** Magnitude of q and k entries (default 1). */
  range?: number;
  memoryOrder?: 'bhld' | 'blhd';
  /** Packed sequences as [queryRows, keyRows] pairs (overrides batch and lengths). */
  packed?: [number, number][];
  /** Builds the mask and the remaining options from a value source. */
  options?: (values: (count: number, lo?: number, hi?: number) => Float32Array) => ReferenceOptions;
}

const product = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

function defineCase(spec: CaseSpec): AttentionCase {
  const dtype = spec.dtype ?? 'f32';
  const backward = spec.backward ?? true;
  const exercises = [...spec.exercises, ...(backward ? (['backward'] as const) : []), ...(dtype === 'f16' ? (['f16'] as const) : [])];
  return {
    name: spec.name,
    dtype,
    backward,
    ...(spec.probabilityRule ? { probabilityRule: spec.probabilityRule } : {}),
    exercises,
    generate(seed) {
      let stream = 0;
      const round = dtype === 'f16' ? roundToHalf : Math.fround;
      const values = (count: number, lo = -1, hi = 1) =>
        randomValues(count, (seed + 0x9e37 * ++stream) >>> 0, lo, hi).map(round);
      const heads = spec.heads;
      const kvHeads = spec.kvHeads ?? heads;
      const valueDim = spec.valueDim ?? spec.headDim;
      const range = spec.range ?? 1;
      const memoryOrder = spec.memoryOrder ?? 'bhld';
      const tensorOf = (batch: number, h: number, length: number, dim: number, lo: number, hi: number): HostTensor => {
        const shape = [batch, h, length, dim];
        const data = values(product(shape), lo, hi);
        if (memoryOrder === 'bhld') return { data, shape, dtype };
        return { data, shape, strides: [length * h * dim, dim, h * dim, 1], dtype };
      };
      let q: HostTensor;
      let k: HostTensor;
      let v: HostTensor;
      let gradOut: HostTensor;
      let packedOptions: ReferenceOptions = {};
      if (spec.packed) {
        const totalQ = spec.packed.reduce((sum, [rows]) => sum + rows, 0);
        const totalK = spec.packed.reduce((sum, [, rows]) => sum + rows, 0);
        q = { data: values(totalQ * heads * spec.headDim, -range, range), shape: [totalQ, heads, spec.headDim], dtype };
        k = { data: values(totalK * kvHeads * spec.headDim, -range, range), shape: [totalK, kvHeads, spec.headDim], dtype };
        v = { data: values(totalK * kvHeads * valueDim), shape: [totalK, kvHeads, valueDim], dtype };
        gradOut = { data: values(totalQ * heads * valueDim), shape: [totalQ, heads, valueDim], dtype };
        const offsets = (pick: 0 | 1) => spec.packed!.reduce((list, pair) => [...list, list.at(-1)! + pair[pick]], [0]);
        packedOptions = { cuSeqlensQ: offsets(0), cuSeqlensK: offsets(1) };
      } else {
        const batch = spec.batch ?? 1;
        q = tensorOf(batch, heads, spec.queryLength, spec.headDim, -range, range);
        k = tensorOf(batch, kvHeads, spec.keyLength, spec.headDim, -range, range);
        v = tensorOf(batch, kvHeads, spec.keyLength, valueDim, -1, 1);
        gradOut = { data: values(batch * heads * spec.queryLength * valueDim), shape: [batch, heads, spec.queryLength, valueDim], dtype };
      }
      const options: ReferenceOptions = {
        ...(kvHeads !== heads ? { enableGqa: true } : {}),
        ...packedOptions,
        ...(spec.options?.(values) ?? {}),
      };
      return { dtype, q, k, v, gradOut, memoryOrder, options };
    },
  };
}

/** A bool mask from random values: true with probability `keep`. */
const boolMask = (values: (count: number) => Float32Array, shape: number[], keep: number): HostTensor => ({
  data: Uint8Array.from(values(product(shape)), (x) => (x * 0.5 + 0.5 < keep ? 1 : 0)),
  shape,
  dtype: 'bool',
});

export const attentionCases: readonly AttentionCase[] = [
  defineCase({ name: 'basic: B2 H2 L17 S17 D64', exercises: [], batch: 2, heads: 2, queryLength: 17, keyLength: 17, headDim: 64 }),
  defineCase({ name: 'single query and key: L1 S1 D8', exercises: [], heads: 2, queryLength: 1, keyLength: 1, headDim: 8 }),
  defineCase({
    name: 'long: L1025 S1025 D8',
    exercises: ['long-sequence'],
    heads: 1,
    queryLength: 1025,
    keyLength: 1025,
    headDim: 8,
  }),
  defineCase({
    name: 'causal top-left, L97 < S130, D40',
    exercises: ['causal-top-left'],
    heads: 2,
    queryLength: 97,
    keyLength: 130,
    headDim: 40,
    options: () => ({ isCausal: true }),
  }),
  defineCase({
    name: 'causal bottom-right, L130 > S97 (first rows fully masked), D59',
    exercises: ['causal-bottom-right', 'fully-masked-rows'],
    heads: 1,
    queryLength: 130,
    keyLength: 97,
    headDim: 59,
    options: () => ({ isCausal: true, causalAlignment: 'bottom-right' }),
  }),
  defineCase({
    name: 'bool mask [L, S] broadcast, L2 S17 D111, weights',
    exercises: ['bool-mask', 'mask-broadcast', 'weights'],
    batch: 2,
    heads: 2,
    queryLength: 2,
    keyLength: 17,
    headDim: 111,
    options: (values) => ({ attnMask: boolMask(values, [2, 17], 0.6), needWeights: true }),
  }),
  defineCase({
    name: 'additive mask [B, 1, 1, S] with −∞, L17 S97 D128',
    exercises: ['additive-mask', 'mask-broadcast'],
    batch: 2,
    heads: 2,
    queryLength: 17,
    keyLength: 97,
    headDim: 128,
    options: (values) => {
      const data = values(2 * 97, -2, 2);
      data.forEach((x, i) => (data[i] = x > 1.4 ? Number.NEGATIVE_INFINITY : x));
      return { attnMask: { data, shape: [2, 1, 1, 97], dtype: 'f32' } };
    },
  }),
  defineCase({
    // Flash kernels skip the key tiles such a mask removes whole and read no mask for those it allows whole: in batch
    // 0 the holes at keys 37 and 161 and the end at 250 make tiles of 16, 32 and 64 keys alternate between whole and
    // partial, key 299 keeps a partial tile after dead ones; batch 1 has partial tiles among dead ones only.
    name: 'bool key padding [B, 1, 1, S] masking whole key tiles, L33 S300 D16',
    exercises: ['bool-mask', 'mask-broadcast'],
    batch: 2,
    heads: 2,
    queryLength: 33,
    keyLength: 300,
    headDim: 16,
    options: (values) => {
      const random = values(2 * 300);
      const allowed = (b: number, j: number) =>
        b === 0 ? (j < 250 && j !== 37 && j !== 161) || j === 299 : (j >= 130 && j < 140) || (j >= 200 && j < 230 && random[b * 300 + j]! < 0.4);
      const data = Uint8Array.from({ length: 2 * 300 }, (_, e) => (allowed(Math.floor(e / 300), e % 300) ? 1 : 0));
      return { attnMask: { data, shape: [2, 1, 1, 300], dtype: 'bool' } };
    },
  }),
  defineCase({ name: 'decode: L1 S17 D256', exercises: [], heads: 2, queryLength: 1, keyLength: 17, headDim: 256 }),
  defineCase({
    name: 'GQA: 6 query heads on 2 kv heads, L17 S33 D64',
    exercises: ['gqa'],
    heads: 6,
    kvHeads: 2,
    queryLength: 17,
    keyLength: 33,
    headDim: 64,
  }),
  defineCase({
    name: 'MQA + causal bottom-right: 4 query heads on 1, L33 S17 D40',
    exercises: ['gqa', 'causal-bottom-right', 'fully-masked-rows'],
    heads: 4,
    kvHeads: 1,
    queryLength: 33,
    keyLength: 17,
    headDim: 40,
    options: () => ({ isCausal: true, causalAlignment: 'bottom-right' }),
  }),
  defineCase({
    name: 'sliding window (8, 0) bottom-right, L97 S97 D64',
    exercises: ['window', 'causal-bottom-right'],
    heads: 2,
    queryLength: 97,
    keyLength: 97,
    headDim: 64,
    options: () => ({ window: [8, 0], causalAlignment: 'bottom-right' }),
  }),
  defineCase({
    name: 'window (4, 4) + causal top-left + bool mask [B, H, L, S], L17 S33 D8',
    exercises: ['window', 'causal-top-left', 'bool-mask', 'fully-masked-rows'],
    batch: 2,
    heads: 2,
    queryLength: 17,
    keyLength: 33,
    headDim: 8,
    options: (values) => ({ window: [4, 4], isCausal: true, attnMask: boolMask(values, [2, 2, 17, 33], 0.5) }),
  }),
  defineCase({
    name: 'softcap 5 with large scores, L33 S33 D64',
    exercises: ['softcap', 'custom-scale'],
    heads: 2,
    queryLength: 33,
    keyLength: 33,
    headDim: 64,
    range: 2,
    options: () => ({ softcap: 5, scale: 0.5 }),
  }),
  defineCase({
    name: 'key lengths [5, 17, 1], L17 S17 D40',
    exercises: ['key-lengths'],
    batch: 3,
    heads: 2,
    queryLength: 17,
    keyLength: 17,
    headDim: 40,
    options: () => ({ keyLengths: [5, 17, 1] }),
  }),
  defineCase({
    name: 'packed varlen: 3 sequences, causal bottom-right, D64',
    exercises: ['varlen', 'causal-bottom-right', 'fully-masked-rows'],
    heads: 2,
    queryLength: 0,
    keyLength: 0,
    headDim: 64,
    packed: [
      [5, 9],
      [17, 17],
      [9, 3],
    ],
    options: () => ({ isCausal: true, causalAlignment: 'bottom-right' }),
  }),
  defineCase({
    name: 'fully masked rows (bool mask rows all false), L17 S17 D8, weights',
    exercises: ['bool-mask', 'fully-masked-rows', 'weights'],
    heads: 2,
    queryLength: 17,
    keyLength: 17,
    headDim: 8,
    options: (values) => {
      const mask = boolMask(values, [1, 2, 17, 17], 0.7);
      const data = mask.data as Uint8Array;
      for (const row of [0, 5, 16 + 17]) data.fill(0, row * 17, row * 17 + 17);
      return { attnMask: mask, needWeights: true };
    },
  }),
  defineCase({
    name: 'large logits ±1e4 (naive softmax overflows), L17 S33 D16',
    exercises: ['large-logits'],
    heads: 2,
    queryLength: 17,
    keyLength: 33,
    headDim: 16,
    range: 50,
    // Scores reach |s| ≈ 1e4 < 2^14, where one f32 ulp is 2^-10. Two correct f32 computations of a score (another
    // summation order, or the backward's recomputation) differ by ~2 ulp = 2^-9; every probability then carries a
    // relative error up to e^(2^-9) − 1 ≈ 2^-9, and out, weights and gradients (linear in P) inherit it relative to
    // their size. The same-precision reference has one summation order, so its own error can be far smaller by
    // chance (it failed 1 run in ~10); the floor states the bound instead. The logsumexp keeps the default rule.
    probabilityRule: { multiple: ATTENTION_TOLERANCE.f32.multiple, floor: 2 ** -9 },
  }),
  defineCase({
    name: 'dropout 0.3, L17 S33 D64, weights',
    exercises: ['dropout', 'weights'],
    batch: 2,
    heads: 2,
    queryLength: 17,
    keyLength: 33,
    headDim: 64,
    options: (values) => ({
      dropoutP: 0.3,
      dropoutSeed: Math.floor(values(1, 0, 2 ** 24)[0]!),
      dropoutOffset: 7,
      needWeights: true,
    }),
  }),
  defineCase({
    name: 'value dim differs: Dqk 40, Dv 24, L17 S33',
    exercises: ['value-dim-differs'],
    heads: 2,
    queryLength: 17,
    keyLength: 33,
    headDim: 40,
    valueDim: 24,
  }),
  defineCase({
    name: '[B, L, H, D] memory (strided views), L17 S97 D59',
    exercises: ['strided-layout'],
    batch: 2,
    heads: 3,
    queryLength: 17,
    keyLength: 97,
    headDim: 59,
    memoryOrder: 'blhd',
  }),
  defineCase({
    name: 'f16: causal top-left, L97 S97 D64',
    dtype: 'f16',
    exercises: ['causal-top-left'],
    heads: 2,
    queryLength: 97,
    keyLength: 97,
    headDim: 64,
    options: () => ({ isCausal: true }),
  }),
  defineCase({
    name: 'f16: GQA + f16 additive mask [L, S], L17 S33 D40',
    dtype: 'f16',
    exercises: ['gqa', 'additive-mask', 'mask-broadcast'],
    heads: 4,
    kvHeads: 2,
    queryLength: 17,
    keyLength: 33,
    headDim: 40,
    options: (values) => ({ attnMask: { data: values(17 * 33, -1, 1), shape: [17, 33], dtype: 'f16' } }),
  }),
];

export interface AttentionCaseSelection {
  readonly run: readonly AttentionCase[];
  /** Each skipped case with the reason of the first unsupported feature it exercises. */
  readonly skipped: readonly { readonly case: AttentionCase; readonly reason: string }[];
}

/**
 * Splits the suite for a backend that lacks some features: `unsupported` maps a feature to the reason
 * (e.g. { dropout: 'flash v1 has no dropout yet' }), so every skip is listed with why.
 */
export function selectAttentionCases(
  unsupported: Readonly<Partial<Record<AttentionFeature, string>>>,
  cases: readonly AttentionCase[] = attentionCases,
): AttentionCaseSelection {
  const run: AttentionCase[] = [];
  const skipped: { case: AttentionCase; reason: string }[] = [];
  for (const kase of cases) {
    const feature = kase.exercises.find((name) => unsupported[name] !== undefined);
    if (feature) skipped.push({ case: kase, reason: `${feature}: ${unsupported[feature]}` });
    else run.push(kase);
  }
  return { run, skipped };
}

const toHalf = (t: HostTensor): HostTensor => ({ ...t, data: Float32Array.from(t.data, roundToHalf), dtype: 'f16' });

/**
 * The same case in f16: q, k, v and gradOut rounded to half precision (masks and options unchanged), checked
 * against the f16 same-precision reference. For kernels that only run in f16 (e.g. on subgroup matrices).
 */
export function inHalfPrecision(kase: AttentionCase): AttentionCase {
  if (kase.dtype === 'f16') return kase;
  return {
    ...kase,
    name: `${kase.name} (in f16)`,
    dtype: 'f16',
    exercises: [...kase.exercises, 'f16'],
    generate(seed) {
      const inputs = kase.generate(seed);
      return { ...inputs, dtype: 'f16', q: toHalf(inputs.q), k: toHalf(inputs.k), v: toHalf(inputs.v), gradOut: toHalf(inputs.gradOut) };
    },
  };
}
