/**
 * Fused optimizer updates: one kernel per parameter and step that reads the gradient and the optimizer state and
 * writes the new parameter in place (the op-by-op form costs about a dozen dispatches per parameter). The CPU
 * device runs the same arithmetic as loops over the Float32Arrays.
 */
import {
  DTypeError,
  preprocessWgsl,
  runKernel,
  uniformLayout,
  workgroupGrid,
  type Tensor,
} from '@webattn/tensor';
import adamSource from './adam.wgsl?raw';
import sgdSource from './sgd.wgsl?raw';

const adamLayout = uniformLayout([
  ['count', 'u32'],
  ['param_offset', 'u32'],
  ['grad_offset', 'u32'],
  ['beta1', 'f32'],
  ['beta2', 'f32'],
  ['eps', 'f32'],
  ['l2', 'f32'],
  ['decay', 'f32'],
  ['step_size', 'f32'],
  ['inv_sqrt_correction2', 'f32'],
]);

const sgdLayout = uniformLayout([
  ['count', 'u32'],
  ['param_offset', 'u32'],
  ['grad_offset', 'u32'],
  ['lr', 'f32'],
  ['momentum', 'f32'],
  ['dampening', 'f32'],
  ['weight_decay', 'f32'],
  ['use_momentum', 'u32'],
  ['first_step', 'u32'],
  ['nesterov', 'u32'],
]);

const adamKernel = {
  name: 'adam-step',
  variant: 'f32',
  code: () => preprocessWgsl(adamSource, { replacements: { UNIFORMS: adamLayout.wgslStruct('Uniforms') } }),
};

const sgdKernel = {
  name: 'sgd-step',
  variant: 'f32',
  code: () => preprocessWgsl(sgdSource, { replacements: { UNIFORMS: sgdLayout.wgslStruct('Uniforms') } }),
};

export interface AdamStep {
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  /** Added to the gradient times the parameter (Adam's weight decay). */
  readonly l2: number;
  /** Parameter multiplier before the update (AdamW: 1 − lr·weightDecay). */
  readonly decay: number;
  readonly stepSize: number;
  readonly inverseSqrtCorrection2: number;
}

export interface SgdStep {
  readonly lr: number;
  readonly momentum: number;
  readonly dampening: number;
  readonly weightDecay: number;
  readonly nesterov: boolean;
  readonly firstStep: boolean;
}

function checkUpdatable(parameter: Tensor, grad: Tensor, optimizer: string): void {
  if (parameter.dtype !== 'f32' || grad.dtype !== 'f32') {
    throw new DTypeError(`${optimizer}: parameters and gradients must be f32, got ${parameter.dtype} / ${grad.dtype}`);
  }
  if (!parameter.isContiguous() || !grad.isContiguous()) {
    throw new DTypeError(`${optimizer}: parameters and gradients must be contiguous`);
  }
}

/** p, m, v updated in place (m and v: contiguous f32 state of the parameter's size, offset 0). */
export function adamUpdate(parameter: Tensor, grad: Tensor, first: Tensor, second: Tensor, step: AdamStep): void {
  checkUpdatable(parameter, grad, 'Adam');
  const count = parameter.size;
  if (count === 0) return;
  if (parameter.device.isGpu) {
    runKernel(parameter.device, adamKernel, {
      buffers: [parameter.buffer, grad.buffer, first.buffer, second.buffer],
      uniforms: adamLayout.pack({
        count,
        param_offset: parameter.offset,
        grad_offset: grad.offset,
        beta1: step.beta1,
        beta2: step.beta2,
        eps: step.eps,
        l2: step.l2,
        decay: step.decay,
        step_size: step.stepSize,
        inv_sqrt_correction2: step.inverseSqrtCorrection2,
      }),
      workgroups: workgroupGrid(parameter.device, Math.ceil(count / 256)),
    });
    return;
  }
  const p = parameter.data as Float32Array;
  const g = grad.data as Float32Array;
  const m = first.data as Float32Array;
  const v = second.data as Float32Array;
  for (let i = 0; i < count; i++) {
    const value = p[parameter.offset + i]!;
    const gradient = g[grad.offset + i]! + step.l2 * value;
    const mean = (m[i] = step.beta1 * m[i]! + (1 - step.beta1) * gradient);
    const variance = (v[i] = step.beta2 * v[i]! + (1 - step.beta2) * gradient * gradient);
    p[parameter.offset + i] =
      value * step.decay - (step.stepSize * mean) / (Math.sqrt(variance) * step.inverseSqrtCorrection2 + step.eps);
  }
}

/** p (and the momentum buffer, when momentum > 0) updated in place. */
export function sgdUpdate(parameter: Tensor, grad: Tensor, buffer: Tensor, step: SgdStep): void {
  checkUpdatable(parameter, grad, 'SGD');
  const count = parameter.size;
  if (count === 0) return;
  const useMomentum = step.momentum !== 0;
  if (parameter.device.isGpu) {
    runKernel(parameter.device, sgdKernel, {
      buffers: [parameter.buffer, grad.buffer, buffer.buffer],
      uniforms: sgdLayout.pack({
        count,
        param_offset: parameter.offset,
        grad_offset: grad.offset,
        lr: step.lr,
        momentum: step.momentum,
        dampening: step.dampening,
        weight_decay: step.weightDecay,
        use_momentum: useMomentum ? 1 : 0,
        first_step: step.firstStep ? 1 : 0,
        nesterov: step.nesterov ? 1 : 0,
      }),
      workgroups: workgroupGrid(parameter.device, Math.ceil(count / 256)),
    });
    return;
  }
  const p = parameter.data as Float32Array;
  const g = grad.data as Float32Array;
  const b = buffer.data as Float32Array;
  for (let i = 0; i < count; i++) {
    const value = p[parameter.offset + i]!;
    let gradient = g[grad.offset + i]! + step.weightDecay * value;
    if (useMomentum) {
      const momentum = (b[i] = step.firstStep ? gradient : step.momentum * b[i]! + (1 - step.dampening) * gradient);
      gradient = step.nesterov ? gradient + step.momentum * momentum : momentum;
    }
    p[parameter.offset + i] = value - step.lr * gradient;
  }
}
