import { InvalidArgumentError, noGrad, type Tensor } from '@webattn/tensor';
import { assignValues } from './assign';

/**
 * Base of the optimizers: the parameters it updates, zeroGrad, and an in-place write of each new value (so the
 * module and anything else holding a parameter see it). Updates run under noGrad.
 */
export abstract class Optimizer {
  readonly parameters: readonly Tensor[];
  /** Number of step() calls so far. */
  stepCount = 0;

  constructor(parameters: Iterable<Tensor>, name: string) {
    this.parameters = [...new Set(parameters)];
    if (this.parameters.length === 0) throw new InvalidArgumentError(`${name}: got an empty parameter list`);
    for (const parameter of this.parameters) {
      if (!parameter.requiresGrad) {
        throw new InvalidArgumentError(`${name}: parameter ${parameter.toString()} does not require grad`);
      }
    }
  }

  /** Clears every parameter's gradient (set to null, as PyTorch's default set_to_none=True). */
  zeroGrad(): void {
    for (const parameter of this.parameters) {
      parameter.grad?.dispose();
      parameter.grad = null;
    }
  }

  /** One update of every parameter that has a gradient. */
  step(): void {
    this.stepCount++;
    noGrad(() => {
      this.parameters.forEach((parameter, index) => {
        if (!parameter.grad) return;
        const updated = this.update(parameter, parameter.grad, index);
        assignValues(parameter, updated, 'parameter');
        updated.dispose();
      });
    });
  }

  /** The parameter's new value (a new tensor; the base class writes it in place and disposes it). */
  protected abstract update(parameter: Tensor, grad: Tensor, index: number): Tensor;
}

export function checkHyperparameter(optimizer: string, name: string, value: number, low: number, high = Infinity): void {
  if (typeof value !== 'number' || !(value >= low && value <= high)) {
    throw new InvalidArgumentError(`${optimizer}: ${name} must be in [${low}, ${high}], got ${value}`);
  }
}
