/**
 * The attention dropout stream on the CPU (attention-dropout.ts): pcg4d against a second, BigInt spelling of
 * Jarzynski and Olano's hash, the stream key, how a draw splits into eight values, the keep rate, and the absence of
 * correlation between the elements and calls that training sees side by side (neighbouring keys, rows and heads,
 * the next offset, the next seed). The WGSL twins are compared bit for bit with these functions by the flash and
 * reference dropout tests.
 */
import { describe, expect, it } from 'vitest';
import {
  attentionDropoutDraw,
  attentionDropoutStream,
  attentionDropoutThreshold,
  attentionDropoutWord,
  attentionKeep,
  pcg4d,
  type AttentionDropoutStream,
} from './attention-dropout';
import { InvalidArgumentError } from './errors';
import { philox4x32, seedKey } from './philox';
import { freshSeed } from './testing';

/** pcg4d in exact integers modulo 2^32, written from the paper's formulation. */
function pcg4dBigInt(input: readonly number[]): number[] {
  const m = 1n << 32n;
  const v = input.map((word) => (BigInt(word) * 1664525n + 1013904223n) % m);
  const mix = () => {
    v[0] = (v[0]! + v[1]! * v[3]!) % m;
    v[1] = (v[1]! + v[2]! * v[0]!) % m;
    v[2] = (v[2]! + v[0]! * v[1]!) % m;
    v[3] = (v[3]! + v[1]! * v[2]!) % m;
  };
  mix();
  for (let i = 0; i < 4; i++) v[i] = v[i]! ^ (v[i]! >> 16n);
  mix();
  return v.map(Number);
}

const randomWords = (seed: number) => philox4x32([seed, 1, 2, 3], [seed, 7]);

describe('pcg4d', () => {
  it('matches an exact-integer spelling of the hash', () => {
    const seed = freshSeed();
    for (const input of [[0, 0, 0, 0], [0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff], randomWords(seed), randomWords(seed + 1)]) {
      expect(pcg4d(input as [number, number, number, number]), `input ${input.join(',')}`).toEqual(pcg4dBigInt(input));
    }
  });
});

describe('attention dropout stream', () => {
  it('keys each call with Philox 4×32-10 of (offset, 0, 0xfffffffe, 0) under the seed', () => {
    const seed = freshSeed();
    expect(attentionDropoutStream(seed, 9)).toEqual(philox4x32([9, 0, 0xfffffffe, 0], seedKey(seed)));
    expect(attentionDropoutStream(seed, 9)).not.toEqual(attentionDropoutStream(seed, 10));
    expect(() => attentionDropoutStream(seed, -1)).toThrow(InvalidArgumentError);
    expect(() => attentionDropoutStream(seed, 2 ** 32)).toThrow(InvalidArgumentError);
    expect(() => attentionDropoutStream(-1, 0)).toThrow(InvalidArgumentError);
  });

  it('splits one draw, pcg4d of the counter xor the stream key with each word xor itself >> 16, into the 16-bit values of eight neighbouring columns, low half first', () => {
    const seed = freshSeed();
    const stream = attentionDropoutStream(seed, seed % 97);
    const [batchHead, row, octet] = [seed % 13, seed % 501, seed % 64];
    const hash = pcg4dBigInt([octet ^ stream[0], row ^ stream[1], batchHead ^ stream[2], stream[3]].map((w) => w >>> 0));
    const draw = hash.map((word) => (word ^ (word >>> 16)) >>> 0);
    expect(attentionDropoutDraw(stream, batchHead, row, octet)).toEqual(draw);
    for (let c = 0; c < 8; c++) {
      const value = attentionDropoutWord(stream, batchHead, row, octet * 8 + c);
      expect(value, `column ${c}, seed ${seed}`).toBe((draw[c >> 1]! >>> (16 * (c & 1))) & 0xffff);
    }
  });

  it('keeps with probability 1 − threshold / 65536, within 2^-16 of 1 − p', () => {
    expect(attentionDropoutThreshold(0)).toBe(0);
    expect(attentionDropoutThreshold(0.5)).toBe(32768);
    expect(1 - attentionDropoutThreshold(0.1) / 65536).toBeCloseTo(0.9, 4);
    expect(() => attentionDropoutThreshold(1)).toThrow(InvalidArgumentError);
    expect(() => attentionDropoutThreshold(-0.1)).toThrow(InvalidArgumentError);
    const seed = freshSeed();
    const stream = attentionDropoutStream(seed, 1);
    const p = 0.1;
    const threshold = attentionDropoutThreshold(p);
    const [rows, columns] = [64, 512];
    let kept = 0;
    for (let row = 0; row < rows; row++) for (let column = 0; column < columns; column++) kept += attentionKeep(stream, threshold, 2, row, column) ? 1 : 0;
    const n = rows * columns;
    expect(Math.abs(kept / n - (1 - p)), `keep rate ${kept / n}, seed ${seed}`).toBeLessThanOrEqual(5 * Math.sqrt((p * (1 - p)) / n));
  });

  // Each of the 16 bits of the values, as ±1, has mean 0 and is uncorrelated with the same bit of the element a
  // step away along every axis a dropout mask has (and across calls): |mean| ≤ 5 / √n. pcg4d's words used as they
  // come fail it (the lowest bit of neighbouring heads' values: 0.04 here, 24σ over 2^19 values).
  it('has unbiased bits, uncorrelated between neighbouring keys, rows, heads, offsets and seeds', () => {
    const seed = freshSeed();
    const offset = seed % 1000;
    type Element = { stream: AttentionDropoutStream; batchHead: number; row: number; column: number };
    const base = (row: number, column: number): Element => ({
      stream: attentionDropoutStream(seed, offset),
      batchHead: 3,
      row,
      column,
    });
    const steps: Record<string, (e: Element) => Element> = {
      'next key': (e) => ({ ...e, column: e.column + 1 }),
      'next key pair': (e) => ({ ...e, column: e.column + 2 }),
      'next draw': (e) => ({ ...e, column: e.column + 8 }),
      'next row': (e) => ({ ...e, row: e.row + 1 }),
      'next head': (e) => ({ ...e, batchHead: e.batchHead + 1 }),
      'next offset': (e) => ({ ...e, stream: attentionDropoutStream(seed, offset + 1) }),
      'next seed': (e) => ({ ...e, stream: attentionDropoutStream(seed + 1, offset) }),
    };
    const value = (e: Element) => attentionDropoutWord(e.stream, e.batchHead, e.row, e.column);
    const [rows, columns] = [96, 256];
    const n = rows * columns;
    const bound = 5 / Math.sqrt(n);
    const sums = new Float64Array(16);
    const products: Record<string, Float64Array> = Object.fromEntries(Object.keys(steps).map((name) => [name, new Float64Array(16)]));
    for (let row = 0; row < rows; row++) {
      for (let column = 0; column < columns; column++) {
        const element = base(row, column);
        const own = value(element);
        for (let bit = 0; bit < 16; bit++) sums[bit]! += (own >> bit) & 1 ? 1 : -1;
        for (const [name, step] of Object.entries(steps)) {
          const other = value(step(element));
          for (let bit = 0; bit < 16; bit++) products[name]![bit]! += ((own ^ other) >> bit) & 1 ? -1 : 1;
        }
      }
    }
    for (let bit = 0; bit < 16; bit++) {
      expect(Math.abs(sums[bit]! / n), `bit ${bit} mean, seed ${seed}`).toBeLessThanOrEqual(bound);
      for (const name of Object.keys(steps)) {
        expect(Math.abs(products[name]![bit]! / n), `bit ${bit}, ${name}, seed ${seed}`).toBeLessThanOrEqual(bound);
      }
    }
  });
});
