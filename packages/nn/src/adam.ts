import { zeros, type Tensor } from '@webattn/tensor';
import { adamUpdate } from './optimizer-kernels';
import { Optimizer, checkHyperparameter } from './optimizer';

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
 * Adam (torch.optim.Adam): moving averages of the gradient and its square with bias correction; weight decay is
 * added to the gradient (L2). One fused kernel per parameter and step.
 */
export class Adam extends Optimizer {
  readonly lr: number;
  readonly betas: readonly [number, number];
  readonly eps: number;
  readonly weightDecay: number;
  protected readonly decoupled: boolean;
  private readonly moments: ({ first: Tensor; second: Tensor; steps: number } | null)[];

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
    this.moments = this.parameters.map(() => null);
  }

  protected update(parameter: Tensor, grad: Tensor, index: number): void {
    const state = (this.moments[index] ??= {
      first: zeros(parameter.device, parameter.shape),
      second: zeros(parameter.device, parameter.shape),
      steps: 0,
    });
    const step = ++state.steps;
    const [beta1, beta2] = this.betas;
    // PyTorch: p ← p·(1 − lr·wd) for AdamW; denom = √v / √(1 − β2ᵗ) + eps; p −= lr / (1 − β1ᵗ) · m / denom.
    adamUpdate(parameter, grad, state.first, state.second, {
      beta1,
      beta2,
      eps: this.eps,
      l2: this.decoupled ? 0 : this.weightDecay,
      decay: this.decoupled ? 1 - this.lr * this.weightDecay : 1,
      stepSize: this.lr / (1 - beta1 ** step),
      inverseSqrtCorrection2: 1 / Math.sqrt(1 - beta2 ** step),
    });
  }

  override dispose(): void {
    for (const state of this.moments) {
      state?.first.dispose();
      state?.second.dispose();
    }
    this.moments.fill(null);
  }
}

/** AdamW (torch.optim.AdamW): Adam with decoupled weight decay p ← p·(1 − lr·weightDecay), default 0.01. */
export class AdamW extends Adam {
  constructor(parameters: Iterable<Tensor>, options: AdamOptions = {}) {
    super(parameters, options, 'AdamW', true);
  }
}
