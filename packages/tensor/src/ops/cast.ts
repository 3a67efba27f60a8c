import { assertDType, type DType } from '../dtype';
import { record } from '../autograd';
import type { Tensor } from '../tensor';
import { elementwise } from './elementwise';
import { checkTensor } from './operands';

/**
 * The values in another dtype (a new contiguous tensor): f32 ↔ f16 (round to nearest), bool → f32/f16 (0/1),
 * and f32/f16 → bool (x ≠ 0). Gradients flow between float dtypes.
 */
export function cast(x: Tensor, dtype: DType): Tensor {
  const input = checkTensor(x, 'cast', 'x');
  const target = assertDType(dtype);
  const out = elementwise('identity', [input], target);
  if (input.dtype === 'bool' || target === 'bool') return out; // not differentiable: no gradient flows
  return record(out, 'cast', [input], [], (grad) => [cast(grad, input.dtype)]);
}
