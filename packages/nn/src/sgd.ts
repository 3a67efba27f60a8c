import { InvalidArgumentError, add, scale, sub, type Tensor } from '@webattn/tensor';
import { Optimizer, checkHyperparameter } from './optimizer';
import { Scratch } from './scratch';

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

  protected update(parameter: Tensor, grad: Tensor, index: number): Tensor {
    const scratch = new Scratch();
    try {
      let g = grad;
      if (this.weightDecay !== 0) g = scratch.own(add(g, scratch.own(scale(parameter, this.weightDecay))));
      if (this.momentum !== 0) {
        const previous = this.buffers[index];
        // PyTorch: the first step's buffer is the gradient itself; then buf = momentum·buf + (1 − dampening)·g.
        const buffer = previous
          ? add(scratch.own(scale(previous, this.momentum)), scratch.own(scale(g, 1 - this.dampening)))
          : scale(g, 1);
        previous?.dispose();
        this.buffers[index] = buffer;
        g = this.nesterov ? scratch.own(add(g, scratch.own(scale(buffer, this.momentum)))) : buffer;
      }
      return sub(parameter, scratch.own(scale(g, this.lr)));
    } finally {
      scratch.dispose();
    }
  }
}
