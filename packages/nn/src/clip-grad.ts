import { InvalidArgumentError, add, div, mul, noGrad, relu, scale, sqrt, sum, type Tensor } from '@webattn/tensor';
import { Scratch } from './scratch';

/**
 * Scales all gradients together so their global L2 norm is at most `maxNorm`
 * (torch.nn.utils.clip_grad_norm_: coefficient min(maxNorm / (norm + 1e-6), 1)). Returns the norm before
 * clipping as a one-element tensor; nothing is read back, so the GPU queue never stalls.
 */
export function clipGradNorm(parameters: Iterable<Tensor>, maxNorm: number): Tensor | null {
  if (!(maxNorm > 0)) throw new InvalidArgumentError(`clipGradNorm: maxNorm must be > 0, got ${maxNorm}`);
  const withGrad = [...parameters].filter((p) => p.grad);
  if (withGrad.length === 0) return null;
  return noGrad(() => {
    const scratch = new Scratch();
    try {
      let total: Tensor | null = null;
      for (const parameter of withGrad) {
        const grad = parameter.grad!;
        const squares = scratch.own(sum(scratch.own(mul(grad, grad))));
        total = total ? scratch.own(add(total, squares)) : squares;
      }
      const norm = sqrt(total!);
      // min(maxNorm / (norm + 1e-6), 1) = maxNorm / max(norm + 1e-6, maxNorm), with max(a, b) = b + relu(a − b).
      const excess = scratch.own(relu(scratch.own(add(norm, 1e-6 - maxNorm))));
      // grad / (max(norm + 1e-6, maxNorm) / maxNorm)
      const coefficient = scratch.own(scale(scratch.own(add(excess, maxNorm)), 1 / maxNorm));
      for (const parameter of withGrad) {
        const grad = parameter.grad!;
        parameter.grad = div(grad, coefficient);
        grad.dispose();
      }
      return norm;
    } finally {
      scratch.dispose();
    }
  });
}
