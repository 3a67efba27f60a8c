import { InvalidArgumentError, ShapeError, formatShape, type Device, type Tensor } from '@webattn/tensor';
import { assignValues, type HostTensor } from './assign';

/** Name → tensor, in registration order, with PyTorch's dotted key names ("self_attn.out_proj.weight"). */
export type StateDict = Record<string, Tensor>;

/** What `loadStateDict` accepts: tensors on the module's device, or host values (from a file, JSON...). */
export type StateDictSource = Record<string, Tensor | HostTensor>;

export interface LoadStateDictResult {
  /** Parameters of the module that `source` did not provide (left unchanged). */
  readonly missingKeys: readonly string[];
  /** Keys of `source` the module has no parameter for. */
  readonly unexpectedKeys: readonly string[];
}

/**
 * Base class of every layer, as torch.nn.Module: parameters and child modules registered by name, train/eval
 * mode, state dicts with PyTorch's key names. Subclasses register in their constructor, in PyTorch's order, so
 * `stateDict()` lists keys exactly as `model.state_dict()` does.
 */
export class Module {
  /** Training mode (dropout active). Set with `train()` / `eval()`. */
  training = true;
  private readonly ownParameters = new Map<string, Tensor | null>();
  private readonly ownChildren = new Map<string, Module>();

  constructor(readonly device: Device) {}

  /** Registers a parameter (or null, like PyTorch's `register_parameter(name, None)`) and returns it. */
  protected registerParameter<T extends Tensor | null>(name: string, parameter: T): T {
    checkName(name, this.ownParameters.has(name) || this.ownChildren.has(name));
    if (parameter) parameter.requiresGrad = true;
    this.ownParameters.set(name, parameter);
    return parameter;
  }

  /** Registers a child module under `name` and returns it. */
  protected registerModule<M extends Module>(name: string, module: M): M {
    checkName(name, this.ownParameters.has(name) || this.ownChildren.has(name));
    this.ownChildren.set(name, module);
    return module;
  }

  /** Direct children, by name. */
  namedChildren(): [string, Module][] {
    return [...this.ownChildren];
  }

  /** This module and every descendant, with dotted names ('' for this one). */
  namedModules(prefix = ''): [string, Module][] {
    const out: [string, Module][] = [[prefix, this]];
    for (const [name, child] of this.ownChildren) out.push(...child.namedModules(join(prefix, name)));
    return out;
  }

  /** Every parameter of this module and its descendants, with PyTorch's dotted names. Shared ones once. */
  namedParameters(prefix = ''): [string, Tensor][] {
    const seen = new Set<Tensor>();
    const out: [string, Tensor][] = [];
    for (const [modulePrefix, module] of this.namedModules(prefix)) {
      for (const [name, parameter] of module.ownParameters) {
        if (!parameter || seen.has(parameter)) continue;
        seen.add(parameter);
        out.push([join(modulePrefix, name), parameter]);
      }
    }
    return out;
  }

  parameters(): Tensor[] {
    return this.namedParameters().map(([, parameter]) => parameter);
  }

  /** Sets training mode here and in every descendant (dropout is active only in training). */
  train(mode = true): this {
    for (const [, module] of this.namedModules()) module.training = mode;
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  /** Clears every parameter's gradient (PyTorch's `zero_grad(set_to_none=True)`). */
  zeroGrad(): void {
    for (const parameter of this.parameters()) {
      parameter.grad?.dispose();
      parameter.grad = null;
    }
  }

  /** The parameters by PyTorch key name. The tensors are the live parameters (not copies). */
  stateDict(): StateDict {
    return Object.fromEntries(this.namedParameters());
  }

  /**
   * Copies values into the parameters in place (so optimizers holding them keep working). Shapes must match
   * exactly. With `strict` (the default, as PyTorch) a missing or unexpected key throws, listing all of them.
   */
  loadStateDict(source: StateDictSource, options: { strict?: boolean } = {}): LoadStateDictResult {
    const strict = options.strict ?? true;
    const parameters = new Map(this.namedParameters());
    const missingKeys = [...parameters.keys()].filter((key) => !(key in source));
    const unexpectedKeys = Object.keys(source).filter((key) => !parameters.has(key));
    if (strict && (missingKeys.length > 0 || unexpectedKeys.length > 0)) {
      throw new InvalidArgumentError(
        `loadStateDict: ${[
          missingKeys.length ? `missing keys: ${missingKeys.join(', ')}` : '',
          unexpectedKeys.length ? `unexpected keys: ${unexpectedKeys.join(', ')}` : '',
        ]
          .filter(Boolean)
          .join('; ')} (pass { strict: false } to load the keys that match)`,
      );
    }
    for (const [key, parameter] of parameters) {
      const value = source[key];
      if (!value) continue;
      if (value.shape.length !== parameter.shape.length || value.shape.some((s, i) => s !== parameter.shape[i])) {
        throw new ShapeError(
          `loadStateDict: ${key} has shape ${formatShape(value.shape)} but the module expects ${formatShape(parameter.shape)}`,
        );
      }
      assignValues(parameter, value, key);
    }
    return { missingKeys, unexpectedKeys };
  }

  /** Releases every parameter's memory; the module cannot be used afterwards. */
  dispose(): void {
    for (const parameter of this.parameters()) {
      parameter.grad?.dispose();
      parameter.dispose();
    }
  }
}

const join = (prefix: string, name: string): string => (prefix ? `${prefix}.${name}` : name);

function checkName(name: string, taken: boolean): void {
  if (!name || name.includes('.')) {
    throw new InvalidArgumentError(`a parameter or module name must be non-empty without dots, got "${name}"`);
  }
  if (taken) throw new InvalidArgumentError(`"${name}" is already registered on this module`);
}
