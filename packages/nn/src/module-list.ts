import type { Device } from '@webattn/tensor';
import { Module } from './module';

/** Holds modules under the names "0", "1", ... (torch.nn.ModuleList), for state-dict keys like layers.0.*. */
export class ModuleList<M extends Module = Module> extends Module {
  readonly items: readonly M[];

  constructor(device: Device, items: readonly M[]) {
    super(device);
    items.forEach((item, index) => this.registerModule(String(index), item));
    this.items = [...items];
  }

  get length(): number {
    return this.items.length;
  }
}
