import { add, div, mul, scale, sqrt, sub, type Tensor } from '@webattn/tensor';
import { Optimizer, checkHyperparameter } from './optimizer';
import { Scratch } from './scratch';

export interface AdamOptions {
  /** Default 1e-3. */
  readonly lr?: number;
  /** Default [0.9, 0.999]. */
  readonly betas?: readonly [number, number];
  /** Default 1e-8. */
  readonly eps?: number;
  /** Adam: L2 penalty added to the gradient (default 0). AdamW: decoupled decay of the weights (default 0.01). */
  readonly weightDecay?: number;
}

/**
 * Adam (torch.optim.Adam): moving averages of the gradient and its square with bias correction;
 * weight decay is added to the gradient (L2).
 */
export class Adam extends Optimizer {
  readonly lr: number;
  readonly betas: readonly [number, number];
  readonly eps: number;
  readonly weightDecay: number;
  protected readonly decoupled: boolean;
  private readonly firstMoments: (Tensor | null)[];
  private readonly secondMoments: (Tensor | null)[];
  private readonly steps: number[];

  constructor(parameters: Iterable<Tensor>, options: AdamOptions = {}, name = 'Adam', decoupled = false) {
    super(parameters, name);
    this.lr = options.lr ?? 1e-3;
    this.betas = options.betas ?? [0.9, 0.999];
    this.eps = options.eps ?? 1e-8;
    this.weightDecay = options.weightDecay ?? (decoupled ? 0.01 : 0);
    this.decoupled = decoupled;
    checkHyperparameter(name, 'lr', this.lr, 0);
    checkHyperparameter(name, 'betas[0]', this.betas[0], 0, 0.999999);
    checkHyperparameter(name, 'betas[1]', this.betas[1], 0, 0.999999);
    checkHyperparameter(name, 'eps', this.eps, 0);
    checkHyperparameter(name, 'weightDecay', this.weightDecay, 0);
    this.firstMoments = this.parameters.map(() => null);
    this.secondMoments = this.parameters.map(() => null);
    this.steps = this.parameters.map(() => 0);
  }

  protected update(parameter: Tensor, grad: Tensor, index: number): Tensor {
    const scratch = new Scratch();
    try {
      const [beta1, beta2] = this.betas;
      const step = ++this.steps[index]!;
      let base = parameter;
      let g = grad;
      if (this.weightDecay !== 0) {
        if (this.decoupled) base = scratch.own(scale(parameter, 1 - this.lr * this.weightDecay));
        else g = scratch.own(add(g, scratch.own(scale(parameter, this.weightDecay))));
      }
      const previousFirst = this.firstMoments[index];
      const previousSecond = this.secondMoments[index];
      const first = previousFirst
        ? add(scratch.own(scale(previousFirst, beta1)), scratch.own(scale(g, 1 - beta1)))
        : scale(g, 1 - beta1);
      const squared = scratch.own(mul(g, g));
      const second = previousSecond
        ? add(scratch.own(scale(previousSecond, beta2)), scratch.own(scale(squared, 1 - beta2)))
        : scale(squared, 1 - beta2);
      previousFirst?.dispose();
      previousSecond?.dispose();
      this.firstMoments[index] = first;
      this.secondMoments[index] = second;
      // PyTorch: denom = √v / √(1 − β2ᵗ) + eps; p −= lr / (1 − β1ᵗ) · m / denom.
      const correction1 = 1 - beta1 ** step;
      const correction2 = 1 - beta2 ** step;
      const denominator = scratch.own(add(scratch.own(scale(scratch.own(sqrt(second)), 1 / Math.sqrt(correction2))), this.eps));
      const direction = scratch.own(div(first, denominator));
      return sub(base, scratch.own(scale(direction, this.lr / correction1)));
    } finally {
      scratch.dispose();
    }
  }
}

/** AdamW (torch.optim.AdamW): Adam with decoupled weight decay p ← p·(1 − lr·weightDecay), default 0.01. */
export class AdamW extends Adam {
  constructor(parameters: Iterable<Tensor>, options: AdamOptions = {}) {
    super(parameters, options, 'AdamW', true);
  }
}
