/**
 * Every error webattn throws on purpose is a `WebattnError`: a named class, a message that names the
 * offending values and the fix, and (where it helps) the structured values themselves.
 */
export class WebattnError extends Error {
  override name = 'WebattnError';
}

/** A shape that does not fit: wrong rank, mismatched sizes, a broadcast that cannot happen. */
export class ShapeError extends WebattnError {
  override name = 'ShapeError';
}

/** A dtype the operation does not accept (or a device that lacks the feature it needs, such as shader-f16). */
export class DTypeError extends WebattnError {
  override name = 'DTypeError';
}

/** Tensors that live on different devices were combined. */
export class DeviceMismatchError extends WebattnError {
  override name = 'DeviceMismatchError';
}

/** The GPU device was lost (or destroyed); tensors on it cannot be used, create a new device. */
export class DeviceLostError extends WebattnError {
  override name = 'DeviceLostError';
}

/** A tensor was used after `dispose()`. */
export class DisposedTensorError extends WebattnError {
  override name = 'DisposedTensorError';
}

/** An argument outside its allowed range (a dropout probability of 1.5, a negative length...). */
export class InvalidArgumentError extends WebattnError {
  override name = 'InvalidArgumentError';
}

/** A request larger than the device (or a configured budget) allows. */
export class ResourceLimitError extends WebattnError {
  override name = 'ResourceLimitError';
  constructor(
    message: string,
    readonly neededBytes: number,
    readonly limitBytes: number,
  ) {
    super(message);
  }
}

/** No WebGPU adapter could be found and a GPU was required. */
export class NoAdapterError extends WebattnError {
  override name = 'NoAdapterError';
}

/** A GPU kernel raised a validation or out-of-memory error (seen in debug mode, which names the kernel). */
export class KernelError extends WebattnError {
  override name = 'KernelError';
  constructor(
    message: string,
    readonly kernel: string,
  ) {
    super(message);
  }
}

/** Autograd misuse: backward() on a tensor that needs no grad, or a non-scalar without a gradient. */
export class AutogradError extends WebattnError {
  override name = 'AutogradError';
}
