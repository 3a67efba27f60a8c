import { InvalidArgumentError } from './errors';
import { philox4x32, seedKey } from './philox';
import attentionDropoutSource from './attention-dropout.wgsl?raw';

/**
 * The attention dropout stream: which attention weights dropout removes, the same bits on the CPU (the float64
 * reference) and in WGSL (`ATTENTION_DROPOUT_WGSL`, every attention kernel), so a backward pass regenerates its
 * forward's mask instead of storing it.
 *
 * Per call, the host draws a 128-bit stream key with Philox 4×32-10 from the seed and offset
 * (`attentionDropoutStream`); per (batch·head, row, eight keys) a kernel hashes the counter xor that key with pcg4d
 * (Jarzynski and Olano, "Hash Functions for GPU Rendering", JCGT 2020) and folds each word with itself >> 16 into
 * eight 16-bit values (`attentionDropoutDraw`). pcg4d costs a tenth of a 7-round Philox draw (WGSL has no
 * 32×32→64-bit product, so Philox's high products take four 16-bit ones): on an H100 the Philox draws were a third
 * of the seed shape's f16 forward with dropout (bench notes, entry 24). Calls with different seeds or offsets hash
 * translates of the counters by unrelated pseudo-random keys.
 */
export const ATTENTION_DROPOUT_WGSL: string = attentionDropoutSource;

/** pcg4d: a bijection of four u32 words (WGSL twin `pcg4d`). */
export function pcg4d(input: readonly [number, number, number, number]): [number, number, number, number] {
  let [x, y, z, w] = input.map((word) => (Math.imul(word, 1664525) + 1013904223) >>> 0) as [number, number, number, number];
  x = (x + Math.imul(y, w)) >>> 0;
  y = (y + Math.imul(z, x)) >>> 0;
  z = (z + Math.imul(x, y)) >>> 0;
  w = (w + Math.imul(y, z)) >>> 0;
  x = (x ^ (x >>> 16)) >>> 0;
  y = (y ^ (y >>> 16)) >>> 0;
  z = (z ^ (z >>> 16)) >>> 0;
  w = (w ^ (w >>> 16)) >>> 0;
  x = (x + Math.imul(y, w)) >>> 0;
  y = (y + Math.imul(z, x)) >>> 0;
  z = (z + Math.imul(x, y)) >>> 0;
  w = (w + Math.imul(y, z)) >>> 0;
  return [x, y, z, w];
}

/** The four words of an attention call's dropout stream key: Philox 4×32-10 of (offset, 0, 0xfffffffe, 0) under the seed. */
export type AttentionDropoutStream = readonly [number, number, number, number];

/**
 * The stream key of an attention call with this dropout seed (integer in [0, 2^53)) and offset (u32). Kernels receive
 * its four words in their uniforms. (Counter word 2 = 0xfffffffe keeps it apart from element dropout's words.)
 */
export function attentionDropoutStream(seed: number, offset: number): AttentionDropoutStream {
  if (!Number.isInteger(offset) || offset < 0 || offset > 0xffffffff) {
    throw new InvalidArgumentError(`dropout offset must be a u32 integer, got ${offset}`);
  }
  return philox4x32([offset, 0, 0xfffffffe, 0], seedKey(seed));
}

/**
 * The 16-bit threshold of attention dropout: element (b, h, i, j) is kept when its value is ≥ threshold, so with
 * probability 1 − threshold / 65536, within 2^-16 of 1 − p. Kernels receive this value in a uniform.
 */
export function attentionDropoutThreshold(p: number): number {
  if (!(p >= 0 && p < 1)) throw new InvalidArgumentError(`dropout probability must be in [0, 1), got ${p}`);
  return Math.floor(p * 65536);
}

/**
 * The draw of attention columns 8·octet .. 8·octet + 7 of (batch·heads + head, row) in a call's stream: the words of
 * pcg4d((octet, row, batchHead, 0) xor stream), each xor itself >> 16 (pcg4d's low bits depend only on its inputs'
 * low bits: without the shift the lowest bit of neighbouring heads' values correlated, 24σ over 2^19 values). WGSL
 * twin: `attention_dropout_draw` in ATTENTION_DROPOUT_WGSL.
 */
export function attentionDropoutDraw(
  stream: AttentionDropoutStream,
  batchHead: number,
  row: number,
  octet: number,
): [number, number, number, number] {
  const hash = pcg4d([(octet ^ stream[0]) >>> 0, (row ^ stream[1]) >>> 0, (batchHead ^ stream[2]) >>> 0, stream[3] >>> 0]);
  return hash.map((word) => (word ^ (word >>> 16)) >>> 0) as [number, number, number, number];
}

/**
 * The random value (16 bits) of attention element (batch·heads + head, row, column) in a call's stream: column c of
 * its draw's eight takes half c & 1 (low first) of word c >> 1. WGSL twins: `attention_dropout_draw` and
 * `attention_dropout_values`.
 */
export function attentionDropoutWord(stream: AttentionDropoutStream, batchHead: number, row: number, column: number): number {
  const draw = attentionDropoutDraw(stream, batchHead, row, column >>> 3);
  return (draw[(column >>> 1) & 3]! >>> (16 * (column & 1))) & 0xffff;
}

/** Whether attention element (batchHead, row, column) survives dropout with this threshold (attentionDropoutThreshold). */
export function attentionKeep(
  stream: AttentionDropoutStream,
  threshold: number,
  batchHead: number,
  row: number,
  column: number,
): boolean {
  return attentionDropoutWord(stream, batchHead, row, column) >= threshold;
}
