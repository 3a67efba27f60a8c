import { InvalidArgumentError, type Tensor } from '@webattn/tensor';

/**
 * Base of the optimizers: the parameters it updates, zeroGrad, and step(), which updates each parameter that has a
 * gradient in place (so the module and anything else holding the parameter see the new values) with one fused
 * kernel per parameter (optimizer-kernels.ts).
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
    this.parameters.forEach((parameter, index) => {
      if (parameter.grad) this.update(parameter, parameter.grad, index);
    });
  }

  /** Updates `parameter` in place from its gradient and the optimizer's state for it. */
  protected abstract update(parameter: Tensor, grad: Tensor, index: number): void;

  /** Releases the optimizer's state (momentum buffers, moments). */
  dispose(): void {}
}

export function checkHyperparameter(optimizer: string, name: string, value: number, low: number, high = Infinity): void {
  if (typeof value !== 'number' || !(value >= low && value <= high)) {
    throw new InvalidArgumentError(`${optimizer}: ${name} must be in [${low}, ${high}], got ${value}`);
  }
}
