import type { Tensor } from '@webattn/tensor';

/**
 * Collects intermediate tensors of a computation so they are disposed together once the result exists. Autograd
 * keeps what backward needs through its own references, so disposing intermediates right after use is safe and
 * keeps GPU memory flat across training steps.
 */
export class Scratch {
  private readonly items: Tensor[] = [];

  /** Registers `t` for disposal and returns it. */
  own<T extends Tensor>(t: T): T {
    this.items.push(t);
    return t;
  }

  dispose(): void {
    for (const t of this.items) t.dispose();
    this.items.length = 0;
  }
}
