import { InvalidArgumentError, zeros, type Tensor } from '@webattn/tensor';
import { sgdUpdate } from './optimizer-kernels';
import { Optimizer, checkHyperparameter } from './optimizer';

export interface SgdOptions {
  readonly lr: number;
  readonly momentum?: number;
  readonly dampening?: number;
  readonly weightDecay?: number;
  readonly nesterov?: boolean;
}

/** Stochastic gradient descent with momentum, dampening, Nesterov and L2 weight decay (torch.optim.SGD). */
export class SGD extends Optimizer {
  readonly lr: number;
  readonly momentum: number;
  readonly dampening: number;
  readonly weightDecay: number;
  readonly nesterov: boolean;
  /** Momentum buffers (created at a parameter's first step), or a one-element placeholder without momentum. */
  private readonly buffers: (Tensor | null)[];

  constructor(parameters: Iterable<Tensor>, options: SgdOptions) {
    super(parameters, 'SGD');
    this.lr = options.lr;
    this.momentum = options.momentum ?? 0;
    this.dampening = options.dampening ?? 0;
    this.weightDecay = options.weightDecay ?? 0;
    this.nesterov = options.nesterov ?? false;
    checkHyperparameter('SGD', 'lr', this.lr, 0);
    checkHyperparameter('SGD', 'momentum', this.momentum, 0);
    checkHyperparameter('SGD', 'dampening', this.dampening, 0, 1);
    checkHyperparameter('SGD', 'weightDecay', this.weightDecay, 0);
    if (this.nesterov && (this.momentum <= 0 || this.dampening !== 0)) {
      throw new InvalidArgumentError('SGD: nesterov needs momentum > 0 and dampening 0');
    }
    this.buffers = this.parameters.map(() => null);
  }

  protected update(parameter: Tensor, grad: Tensor, index: number): void {
    const firstStep = !this.buffers[index];
    const buffer = (this.buffers[index] ??= zeros(parameter.device, this.momentum !== 0 ? parameter.shape : [1]));
    sgdUpdate(parameter, grad, buffer, {
      lr: this.lr,
      momentum: this.momentum,
      dampening: this.dampening,
      weightDecay: this.weightDecay,
      nesterov: this.nesterov,
      firstStep,
    });
  }

  override dispose(): void {
    this.buffers.forEach((buffer) => buffer?.dispose());
    this.buffers.fill(null);
  }
}
