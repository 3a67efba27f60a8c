/**
 * Philox on the CPU (philox.ts): the published known answers of Philox 4×32-10, and the attention dropout stream
 * built on it (7 rounds, 16-bit values, eight columns per call). The WGSL twins are compared bit for bit with these
 * functions by the flash and reference dropout tests.
 */
import { describe, expect, it } from 'vitest';
import {
  ATTENTION_PHILOX_ROUNDS,
  attentionDropoutThreshold,
  attentionDropoutWord,
  attentionKeep,
  philox4x32,
  seedKey,
} from './philox';
import { InvalidArgumentError } from './errors';
import { freshSeed } from './testing';

const hex = (words: readonly number[]) => words.map((word) => word.toString(16).padStart(8, '0'));

describe('philox4x32', () => {
  it('gives Random123 known answers with 10 rounds', () => {
    expect(hex(philox4x32([0, 0, 0, 0], [0, 0]))).toEqual(['6627e8d5', 'e169c58d', 'bc57ac4c', '9b00dbd8']);
    const ones = 0xffffffff;
    expect(hex(philox4x32([ones, ones, ones, ones], [ones, ones]))).toEqual(['408f276d', '41c83b0e', 'a20bc7c6', '6d5451fd']);
    expect(hex(philox4x32([0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344], [0xa4093822, 0x299f31d0]))).toEqual([
      'd16cfe09',
      '94fdcceb',
      '5001e420',
      '24126ea1',
    ]);
  });

  it('takes fewer rounds when asked (different words)', () => {
    expect(philox4x32([1, 2, 3, 4], [5, 6], 7)).not.toEqual(philox4x32([1, 2, 3, 4], [5, 6]));
  });
});

describe('attention dropout stream', () => {
  it('splits one 7-round draw into the 16-bit values of eight neighbouring columns, low half first', () => {
    const seed = freshSeed();
    const key = seedKey(seed);
    const [offset, batchHead, row, octet] = [seed % 97, seed % 13, seed % 501, seed % 64];
    const draw = philox4x32([octet, row, batchHead, offset], key, ATTENTION_PHILOX_ROUNDS);
    for (let c = 0; c < 8; c++) {
      const value = attentionDropoutWord(key, offset, batchHead, row, octet * 8 + c);
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
    const key = seedKey(seed);
    const p = 0.3;
    const threshold = attentionDropoutThreshold(p);
    const [rows, columns] = [64, 512];
    let kept = 0;
    for (let row = 0; row < rows; row++) for (let column = 0; column < columns; column++) kept += attentionKeep(key, 1, threshold, 2, row, column) ? 1 : 0;
    const n = rows * columns;
    expect(Math.abs(kept / n - (1 - p)), `keep rate ${kept / n}, seed ${seed}`).toBeLessThanOrEqual(5 * Math.sqrt((p * (1 - p)) / n));
  });
});
