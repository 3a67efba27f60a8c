import { AutogradError, DeviceMismatchError, ShapeError } from './errors';
import { formatShape, sameShape } from './shape';
import type { GradFn, Tensor } from './tensor';
import { add, copy } from './ops/arithmetic';
import { cast } from './ops/cast';
import { full } from './creation';

/**
 * Define-by-run reverse-mode autograd. Each op whose inputs require gradients gives its output a `gradFn`
 * (the inputs and a backward closure over detached views of what it saved). `backward()` walks the graph in
 * reverse topological order, sums gradients reaching a tensor along several paths, accumulates into the
 * `.grad` of leaves, and releases each node's saved tensors once used (a graph supports one backward pass,
 * as PyTorch's default retain_graph=False).
 */

let gradEnabled = true;

/** Whether ops currently record the graph (false inside `noGrad`). */
export function isGradEnabled(): boolean {
  return gradEnabled;
}

/**
 * Runs `fn` without recording gradients. If `fn` returns a promise, recording resumes when it settles (code
 * running concurrently meanwhile also records nothing).
 */
export function noGrad<T>(fn: () => T): T {
  const previous = gradEnabled;
  gradEnabled = false;
  let result: T;
  try {
    result = fn();
  } catch (error) {
    gradEnabled = previous;
    throw error;
  }
  if (result instanceof Promise) {
    return result.finally(() => {
      gradEnabled = previous;
    }) as T;
  }
  gradEnabled = previous;
  return result;
}

/** Whether an op on these inputs must record a gradient function. */
export function tracks(inputs: readonly (Tensor | number | null | undefined)[]): boolean {
  return gradEnabled && inputs.some((x) => typeof x === 'object' && x !== null && x.requiresGrad);
}

interface ReleasableGradFn extends GradFn {
  released: boolean;
  release(): void;
}

/**
 * Gives `output` a gradient function when gradients are being recorded and some input requires them.
 * `save` lists tensors the backward needs; they are kept alive (as detached views) until the backward ran.
 * `backward` returns one gradient (or null) per input, shaped like that input.
 */
export function record(
  output: Tensor,
  name: string,
  inputs: readonly (Tensor | number | null | undefined)[],
  save: readonly Tensor[],
  backward: (gradOutput: Tensor, saved: readonly Tensor[]) => readonly (Tensor | null)[],
): Tensor {
  if (!tracks(inputs)) return output;
  // Numbers and absent inputs get no gradient: keep the backward's results of tensor positions only.
  const positions = inputs.flatMap((x, i) => (typeof x === 'object' && x !== null ? [i] : []));
  const tensorInputs = positions.map((i) => inputs[i] as Tensor);
  const saved = save.map((t) => t.detach());
  const gradFn: ReleasableGradFn = {
    name,
    inputs: tensorInputs,
    released: false,
    backward(gradOutput) {
      if (this.released) {
        throw new AutogradError(
          `backward through ${name} a second time: its saved tensors were freed after the first backward(); run the forward pass again`,
        );
      }
      const grads = backward(gradOutput, saved);
      grads.forEach((grad, i) => {
        if (grad && !positions.includes(i)) grad.dispose();
      });
      return positions.map((i) => grads[i] ?? null);
    },
    release() {
      this.released = true;
      for (const t of saved) t.dispose();
    },
  };
  output.requiresGrad = true;
  output.gradFn = gradFn;
  return output;
}

/** Tensors reachable from `root` through gradient functions, each after everything it feeds (root first). */
function reverseTopologicalOrder(root: Tensor): Tensor[] {
  const order: Tensor[] = [];
  const visited = new Set<Tensor>([root]);
  const stack: { node: Tensor; next: number }[] = [{ node: root, next: 0 }];
  while (stack.length > 0) {
    const frame = stack[stack.length - 1]!;
    const inputs = frame.node.gradFn?.inputs ?? [];
    if (frame.next < inputs.length) {
      const input = inputs[frame.next++]!;
      if (input.requiresGrad && !visited.has(input)) {
        visited.add(input);
        stack.push({ node: input, next: 0 });
      }
    } else {
      order.push(frame.node);
      stack.pop();
    }
  }
  return order.reverse();
}

function isDense(t: Tensor): boolean {
  return t.isContiguous() && t.offset === 0 && t.storage.length === t.size;
}

/**
 * Backpropagates from `root`: `gradient` defaults to 1 for a one-element root. Leaves (requiresGrad, no
 * gradFn) receive dense gradients in `.grad`, added to what is there.
 */
export function runBackward(root: Tensor, gradient?: Tensor): void {
  if (!root.requiresGrad) {
    throw new AutogradError(
      `backward() on ${root.toString()}, which does not require grad: create the inputs with { requiresGrad: true } (and outside noGrad)`,
    );
  }
  let seed: Tensor;
  if (gradient !== undefined) {
    gradient.assertUsable('backward gradient');
    if (!sameShape(gradient.shape, root.shape)) {
      throw new ShapeError(
        `backward gradient has shape ${formatShape(gradient.shape)} but the tensor has ${formatShape(root.shape)}; pass a gradient of the same shape`,
      );
    }
    if (gradient.device !== root.device) {
      throw new DeviceMismatchError(`backward gradient lives on ${gradient.device.kind}, the tensor on ${root.device.kind}`);
    }
    seed = gradient.detach();
  } else {
    if (root.size !== 1) {
      throw new AutogradError(
        `backward() without a gradient needs a one-element tensor, got shape ${formatShape(root.shape)}; reduce it with sum()/mean() or pass backward(gradient)`,
      );
    }
    seed = full(root.device, root.shape, 1, { dtype: root.dtype });
  }
  const order = reverseTopologicalOrder(root);
  const grads = new Map<Tensor, Tensor>([[root, seed]]);
  noGrad(() => {
    try {
      for (const node of order) {
        const grad = grads.get(node);
        if (!grad) continue;
        grads.delete(node);
        if (!node.gradFn) {
          accumulateLeaf(node, grad);
          continue;
        }
        const gradFn = node.gradFn;
        const inputGrads = gradFn.backward(grad);
        const seen = new Set<Tensor>([grad]);
        gradFn.inputs.forEach((input, i) => {
          let inputGrad = inputGrads[i] ?? null;
          if (!inputGrad) return;
          if (!input.requiresGrad) {
            if (!seen.has(inputGrad)) inputGrad.dispose();
            return;
          }
          // Each map entry owns its tensor: share storage through a fresh view, never the same object.
          if (seen.has(inputGrad)) inputGrad = inputGrad.detach();
          seen.add(inputGrad);
          if (!sameShape(inputGrad.shape, input.shape)) {
            throw new AutogradError(
              `${gradFn.name} backward returned a gradient of shape ${formatShape(inputGrad.shape)} for an input of shape ${formatShape(input.shape)}`,
            );
          }
          if (inputGrad.dtype !== input.dtype) {
            const converted = cast(inputGrad, input.dtype);
            inputGrad.dispose();
            inputGrad = converted;
          }
          const existing = grads.get(input);
          if (existing) {
            grads.set(input, add(existing, inputGrad));
            existing.dispose();
            inputGrad.dispose();
          } else {
            grads.set(input, inputGrad);
          }
        });
        grad.dispose();
        (gradFn as Partial<ReleasableGradFn>).release?.();
      }
    } finally {
      for (const leftover of grads.values()) leftover.dispose();
    }
  });
}

function accumulateLeaf(leaf: Tensor, grad: Tensor): void {
  if (!leaf.grad) {
    if (isDense(grad)) leaf.grad = grad;
    else {
      leaf.grad = copy(grad);
      grad.dispose();
    }
    return;
  }
  const total = add(leaf.grad, grad);
  leaf.grad.dispose();
  grad.dispose();
  leaf.grad = total;
}
