import { record } from '../autograd';
import { InvalidArgumentError } from '../errors';
import { dropoutThreshold, seedKey } from '../philox';
import type { Tensor } from '../tensor';
import { copy } from './arithmetic';
import { elementwise } from './elementwise';
import { assertFloat, checkTensor } from './operands';

export interface DropoutOptions {
  /** Philox seed (integer in [0, 2^53)): the same seed and offset give the same mask on every device. */
  readonly seed: number;
  /** Philox offset, to draw independent masks from one seed (default 0). */
  readonly offset?: number;
  /** false: return a copy of x unchanged (evaluation mode). Default true. */
  readonly training?: boolean;
}

/**
 * Zeroes each element with probability p and scales the rest by 1/(1−p). Element i (row-major index) is kept
 * iff `elementWord(seedKey(seed), offset, i) >= dropoutThreshold(p)`: CPU and GPU masks are bit-identical and
 * the backward regenerates the same mask.
 */
export function dropout(x: Tensor, p: number, options: DropoutOptions): Tensor {
  const input = checkTensor(x, 'dropout', 'x');
  assertFloat(input, 'dropout', 'x');
  if (!options || typeof options !== 'object') {
    throw new InvalidArgumentError('dropout needs options { seed } (an integer) so masks are reproducible');
  }
  const threshold = dropoutThreshold(p);
  const key = seedKey(options.seed);
  const philoxOffset = options.offset ?? 0;
  if (!Number.isInteger(philoxOffset) || philoxOffset < 0 || philoxOffset > 0xffffffff) {
    throw new InvalidArgumentError(`dropout offset must be an integer in [0, 2^32), got ${philoxOffset}`);
  }
  if (options.training === false || p === 0) return copy(input);
  const params = { key, philoxOffset, threshold, alpha: 1 / (1 - p) };
  const out = elementwise('dropout', [input], input.dtype, params);
  return record(out, 'dropout', [input], [], (grad) => [elementwise('dropout', [grad], grad.dtype, params)]);
}
