import {
  InvalidArgumentError,
  ShapeError,
  formatShape,
  logSoftmax,
  mean,
  mul,
  scale,
  sub,
  sum,
  tensor,
  type Tensor,
} from '@webattn/tensor';

export type Reduction = 'mean' | 'sum';

/** Mean (or sum) of squared differences (torch.nn.functional.mse_loss). */
export function mseLoss(input: Tensor, target: Tensor, options: { reduction?: Reduction } = {}): Tensor {
  if (input.shape.length !== target.shape.length || input.shape.some((s, i) => s !== target.shape[i])) {
    throw new ShapeError(`mseLoss: input ${formatShape(input.shape)} and target ${formatShape(target.shape)} must have the same shape`);
  }
  const difference = sub(input, target);
  const squared = mul(difference, difference);
  difference.dispose();
  const loss = options.reduction === 'sum' ? sum(squared) : mean(squared);
  squared.dispose();
  return loss;
}

export interface CrossEntropyOptions {
  /** Target class indices equal to this are skipped (and not counted in the mean). Default −100. */
  readonly ignoreIndex?: number;
  /** Mix the one-hot target with the uniform distribution (PyTorch's label_smoothing). Default 0. */
  readonly labelSmoothing?: number;
  readonly reduction?: Reduction;
}

/**
 * Cross entropy of logits [N, C] (or [..., C], flattened) against class indices (host integers, one per row), as
 * torch.nn.functional.cross_entropy: −Σ target-weights · logSoftmax(logits), averaged over non-ignored rows.
 * The target weights (one-hot, smoothed) are built on the host, so the loss is two GPU kernels plus a sum.
 */
export function crossEntropy(
  logits: Tensor,
  target: ArrayLike<number>,
  options: CrossEntropyOptions = {},
): Tensor {
  const classes = logits.shape[logits.rank - 1]!;
  const rows = logits.size / Math.max(classes, 1);
  if (logits.rank < 2 || target.length !== rows) {
    throw new ShapeError(
      `crossEntropy: logits ${formatShape(logits.shape)} need [..., classes] with one target per row (${rows}), got ${target.length} targets`,
    );
  }
  const ignoreIndex = options.ignoreIndex ?? -100;
  const smoothing = options.labelSmoothing ?? 0;
  if (!(smoothing >= 0 && smoothing <= 1)) {
    throw new InvalidArgumentError(`crossEntropy: labelSmoothing must be in [0, 1], got ${smoothing}`);
  }
  const weights = new Float32Array(rows * classes);
  let counted = 0;
  for (let row = 0; row < rows; row++) {
    const label = target[row]!;
    if (label === ignoreIndex) continue;
    if (!Number.isInteger(label) || label < 0 || label >= classes) {
      throw new InvalidArgumentError(`crossEntropy: target ${label} at row ${row} is not a class in 0..${classes - 1} (nor ignoreIndex ${ignoreIndex})`);
    }
    counted++;
    for (let c = 0; c < classes; c++) weights[row * classes + c] = smoothing / classes;
    weights[row * classes + label] = smoothing / classes + 1 - smoothing;
  }
  const flat = logits.rank === 2 ? logits : logits.reshape([rows, classes]);
  const logProbabilities = logSoftmax(flat, -1);
  if (flat !== logits) flat.dispose();
  const targetWeights = tensor(logits.device, weights, [rows, classes], { dtype: logits.dtype });
  const weighted = mul(logProbabilities, targetWeights);
  logProbabilities.dispose();
  targetWeights.dispose();
  const total = sum(weighted);
  weighted.dispose();
  // Mean over the rows that count (PyTorch gives NaN when none does; 0 here: nothing to learn from).
  const divisor = options.reduction === 'sum' ? 1 : Math.max(counted, 1);
  const loss = scale(total, -1 / divisor);
  total.dispose();
  return loss;
}

/** torch.nn.MSELoss as a callable object. */
export class MSELoss {
  constructor(readonly options: { reduction?: Reduction } = {}) {}
  forward(input: Tensor, target: Tensor): Tensor {
    return mseLoss(input, target, this.options);
  }
}

/** torch.nn.CrossEntropyLoss as a callable object. */
export class CrossEntropyLoss {
  constructor(readonly options: CrossEntropyOptions = {}) {}
  forward(logits: Tensor, target: ArrayLike<number>): Tensor {
    return crossEntropy(logits, target, this.options);
  }
}
