/**
 * The cost model must pick the backend that measured fastest (the README's tables) on every measured shape, and
 * pick the calibration from the adapter description.
 */
import { describe, expect, it } from 'vitest';
import { GPU_CALIBRATION, SOFTWARE_CALIBRATION, calibrationFor, estimateFlash, estimateMath, estimateSplitKv, type CostCalibration } from './cost-model';
import { H100_ADAPTER, LAVAPIPE_ADAPTER, describeShape } from './test-problems';

type Shape = [batch: number, queryHeads: number, kvHeads: number, queryLength: number, keyLength: number, headDim: number];

/** Measured ms per call [flash, efficient, math] (null: not eligible), from the README tables. */
const MEASURED: { calibration: CostCalibration; rows: [Shape, (number | null)[]][] }[] = [
  {
    calibration: SOFTWARE_CALIBRATION,
    rows: [
      [[1, 8, 8, 1, 1024, 64], [86.97, 14.51, 15.15]],
      [[1, 8, 2, 1, 4096, 64], [333.79, 74.76, 44.01]],
      [[1, 4, 4, 16, 2048, 128], [246.81, 360.01, 387.78]],
      [[1, 4, 4, 256, 256, 64], [312.07, null, 358.7]],
      [[2, 8, 8, 512, 512, 64], [4755.49, null, 5694.28]],
    ],
  },
  {
    calibration: GPU_CALIBRATION,
    rows: [
      [[1, 8, 8, 1, 1024, 64], [2.02, 1.28, 1.4]],
      [[1, 8, 2, 1, 4096, 64], [5.63, 0.95, 1.67]],
      [[4, 32, 8, 1, 16384, 128], [62.39, 6.71, 9.48]],
      [[1, 4, 4, 16, 2048, 128], [4.99, 1.24, 1.29]],
      [[2, 8, 8, 512, 512, 64], [1.3, null, 2.26]],
    ],
  },
];

const order = (values: (number | null)[]) =>
  ['flash', 'efficient', 'math']
    .map((name, index) => [name, values[index]] as const)
    .filter((entry): entry is readonly [string, number] => entry[1] !== null)
    .sort((a, b) => a[1] - b[1])
    .map(([name]) => name);

describe('cost model', () => {
  for (const { calibration, rows } of MEASURED) {
    for (const [[batch, queryHeads, kvHeads, queryLength, keyLength, headDim], measured] of rows) {
      it(`${calibration.device}: B${batch} Hq${queryHeads} Hkv${kvHeads} L${queryLength} S${keyLength} D${headDim} picks the measured fastest`, () => {
        const problem = describeShape({ batch, queryHeads, kvHeads, queryLength, keyLength, headDim });
        const estimated = [estimateFlash, estimateSplitKv, estimateMath].map((estimate, index) =>
          measured[index] === null ? null : estimate(problem, calibration).microseconds,
        );
        expect(order(estimated)[0]).toBe(order(measured)[0]);
      });
    }
  }

  it('flash pays for padded rows on decode shapes', () => {
    const one = estimateFlash(describeShape({ queryLength: 1, keyLength: 1024 }), GPU_CALIBRATION);
    const sixtyFour = estimateFlash(describeShape({ queryLength: 64, keyLength: 1024 }), GPU_CALIBRATION);
    expect(one.flops).toBe(sixtyFour.flops);
  });

  it('picks the calibration from the adapter description', () => {
    expect(calibrationFor(LAVAPIPE_ADAPTER)).toBe(SOFTWARE_CALIBRATION);
    expect(calibrationFor('cpu')).toBe(SOFTWARE_CALIBRATION);
    expect(calibrationFor(H100_ADAPTER)).toBe(GPU_CALIBRATION);
    expect(calibrationFor('apple (Apple M2)')).toBe(GPU_CALIBRATION);
  });
});
