import { InvalidArgumentError } from '@webattn/tensor';
import { describe, expect, it } from 'vitest';
import { DEFAULT_SHAPES, QUICK_SHAPE, parseForwardTiles, parseKernelArgs, parseShape } from './kernel-args';
import { BACKWARD_FLOP_FACTOR, forwardFlops, parseOptionSet } from './option-sets';

describe('kernel bench arguments', () => {
  it('defaults to the issue: three shapes, f32 and f16, every option set, flash against math', () => {
    const config = parseKernelArgs([]);
    expect(config.shapes).toEqual(DEFAULT_SHAPES);
    expect(config.shapes.map((s) => [s.batch, s.heads, s.length, s.headDim])).toEqual([
      [1, 4, 1024, 64],
      [4, 16, 4096, 64],
      [32, 8, 500, 16],
    ]);
    expect(config.dtypes).toEqual(['f32', 'f16']);
    expect(config.optionSets.map((set) => set.name)).toEqual(['none', 'padding', 'padding-mask', 'dropout', 'causal']);
    expect(config.backends).toEqual(['flash', 'math']);
    expect(config.iterations).toBeGreaterThan(1);
  });

  it('reads shapes (repeated or listed), dtypes, option sets, backends and timing options', () => {
    const config = parseKernelArgs([
      '--shape', '1,2,3,4', '5,6,7,8',
      '--shape', '2,1,9,40',
      '--dtype', 'f16',
      '--options', 'none,padding+dropout,causal',
      '--backends', 'math,efficient',
      '--iterations', '4', '--warmup', '0', '--timing', 'wall-clock', '--math-budget', '2', '--no-compare',
      '--records', 'out.jsonl', '--tune',
    ]);
    expect(config.shapes).toEqual([
      { batch: 1, heads: 2, length: 3, headDim: 4 },
      { batch: 5, heads: 6, length: 7, headDim: 8 },
      { batch: 2, heads: 1, length: 9, headDim: 40 },
    ]);
    expect(config.dtypes).toEqual(['f16']);
    expect(config.optionSets.map((set) => set.name)).toEqual(['none', 'padding+dropout', 'causal']);
    expect(config.optionSets[1]).toMatchObject({ keyLengths: true, boolMask: false, dropout: 0.1, causal: false });
    expect(config.backends).toEqual(['math', 'efficient']);
    expect(config).toMatchObject({ iterations: 4, warmup: 0, timing: 'wall-clock', mathBudgetBytes: 2 * 2 ** 20, compare: false, recordsFile: 'out.jsonl', tune: true });
  });

  it('reads varlen alone and joined with causal and dropout, in the canonical order', () => {
    const config = parseKernelArgs(['--options', 'varlen,causal+varlen,dropout+varlen+causal']);
    expect(config.optionSets.map((set) => set.name)).toEqual(['varlen', 'varlen+causal', 'varlen+dropout+causal']);
    expect(config.optionSets[0]).toEqual({ name: 'varlen', keyLengths: false, boolMask: false, varlen: true, dropout: 0, causal: false });
    expect(config.optionSets[2]).toMatchObject({ varlen: true, dropout: 0.1, causal: true, keyLengths: false, boolMask: false });
    expect(parseOptionSet('padding').varlen).toBe(false);
    expect(parseKernelArgs([]).optionSets.every((set) => !set.varlen)).toBe(true);
  });

  it('--quick is a tiny f32 run unless shapes are given', () => {
    expect(parseKernelArgs(['--quick'])).toMatchObject({ shapes: [QUICK_SHAPE], dtypes: ['f32'] });
    expect(parseKernelArgs(['--quick', '--shape', '1,1,8,8']).shapes).toEqual([{ batch: 1, heads: 1, length: 8, headDim: 8 }]);
  });

  it('--profile asks for the per-kernel breakdown, which needs GPU timestamps', () => {
    expect(parseKernelArgs([]).profile).toBe(false);
    expect(parseKernelArgs(['--profile']).profile).toBe(true);
    expect(() => parseKernelArgs(['--profile', '--timing', 'wall-clock'])).toThrow(/--profile .* GPU timestamps/);
  });

  it('--forward-tiles reads KERNEL:THREADS:ROWS:KEYS, and excludes --tune', () => {
    expect(parseKernelArgs([]).forwardTiles).toBeUndefined();
    expect(parseKernelArgs(['--forward-tiles', 'matrix:64:2:16']).forwardTiles).toEqual({ kernel: 'matrix', threads: 64, rowsPerThread: 2, keys: 16 });
    expect(parseForwardTiles('tiled:128:4:32')).toEqual({ kernel: 'tiled', threads: 128, rowsPerThread: 4, keys: 32 });
    for (const bad of ['matrix:32:1', 'simd:32:1:32', 'matrix:32:0:32', 'matrix:32:1:1.5', 'matrix:32:1:32:9', 'compact']) {
      expect(() => parseForwardTiles(bad), bad).toThrow(InvalidArgumentError);
      expect(() => parseForwardTiles(bad), bad).toThrow(`got "${bad}"`);
    }
    expect(() => parseKernelArgs(['--tune', '--forward-tiles', 'matrix:32:1:32'])).toThrow(/choose one of --tune .* and --forward-tiles/);
  });

  it('rejects bad input with InvalidArgumentError naming the value', () => {
    expect(() => parseShape('1,2,3')).toThrow(InvalidArgumentError);
    expect(() => parseShape('1,2,0,4')).toThrow(/"1,2,0,4"/);
    expect(() => parseKernelArgs(['--dtype', 'bf16'])).toThrow(/bf16/);
    expect(() => parseKernelArgs(['--backends', 'flash,cudnn'])).toThrow(/flash,cudnn/);
    expect(() => parseKernelArgs(['--options', 'none,sliding'])).toThrow(/sliding/);
    expect(() => parseKernelArgs(['--iterations', '0'])).toThrow(/--iterations needs an integer ≥ 1, got "0"/);
    expect(() => parseKernelArgs(['--shape'])).toThrow(/--shape needs a value/);
    expect(() => parseKernelArgs(['--fast'])).toThrow(/unknown option "--fast"/);
    expect(() => parseOptionSet('none+causal')).toThrow(/'none' cannot be combined/);
    expect(() => parseOptionSet('padding+padding-mask')).toThrow(/choose one/);
    expect(() => parseOptionSet('varlen+padding')).toThrow(InvalidArgumentError);
    expect(() => parseOptionSet('varlen+padding')).toThrow(/"varlen\+padding": varlen cannot be combined with padding;/);
    expect(() => parseOptionSet('padding-mask+varlen+dropout')).toThrow(/varlen cannot be combined with padding-mask;/);
    expect(() => parseOptionSet('none+varlen')).toThrow(/'none' cannot be combined/);
    expect(() => parseKernelArgs(['--options', 'none,varlen+padding'])).toThrow(InvalidArgumentError);
  });

  it('counts FLOPs as 4·B·H·N²·D forward, halved for causal', () => {
    const shape = { batch: 2, heads: 3, length: 5, headDim: 7 };
    expect(forwardFlops(shape, parseOptionSet('none'))).toBe(4 * 2 * 3 * 5 * 5 * 7);
    expect(forwardFlops(shape, parseOptionSet('padding+dropout'))).toBe(4 * 2 * 3 * 5 * 5 * 7);
    expect(forwardFlops(shape, parseOptionSet('causal'))).toBe(2 * 2 * 3 * 5 * 5 * 7);
    // varlen counts every sequence as N long, like padding, so its TFLOP/s compare with none's.
    expect(forwardFlops(shape, parseOptionSet('varlen+dropout'))).toBe(4 * 2 * 3 * 5 * 5 * 7);
    expect(forwardFlops(shape, parseOptionSet('varlen+causal'))).toBe(2 * 2 * 3 * 5 * 5 * 7);
    expect(BACKWARD_FLOP_FACTOR).toBe(2.5);
  });
});
