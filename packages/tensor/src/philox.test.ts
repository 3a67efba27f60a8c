/**
 * Philox on the CPU (philox.ts): the published known answers of Philox 4×32-10. Its WGSL twin is compared bit for
 * bit with it by the element dropout tests (ops/dropout.test.ts).
 */
import { describe, expect, it } from 'vitest';
import { philox4x32 } from './philox';

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
