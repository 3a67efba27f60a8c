import {
  InvalidArgumentError,
  ShapeError,
  cat,
  formatShape,
  mean,
  narrow,
  zeros,
  type Device,
  type Tensor,
} from '@webattn/tensor';
import { scaledDotProductAttention, scaledDotProductAttentionWithWeights } from '@webattn/sdpa';
import { checkProbability } from './dropout';
import { SeedSequence, constantParameter, normalParameter, uniformParameter } from './init';
import { Linear, checkFeatures, linear } from './linear';
import { multiheadMaskToSdpa } from './attention-mask';
import { Module } from './module';
import { Scratch } from './scratch';

export interface MultiheadAttentionOptions {
  /** Dropout on the attention weights in training mode (default 0). */
  readonly dropout?: number;
  /** Biases on the input and output projections (default true). */
  readonly bias?: boolean;
  /** Learned bias_k / bias_v appended to the keys and values (default false). */
  readonly addBiasKV?: boolean;
  /** Append a zero key and value (default false). */
  readonly addZeroAttn?: boolean;
  /** Key feature size (default embedDim); with vdim ≠ embedDim the projections are separate weights. */
  readonly kdim?: number;
  readonly vdim?: number;
  /** Inputs and output are [B, L, E] (true) or [L, B, E] (false, PyTorch's default). */
  readonly batchFirst?: boolean;
  /** Seed of the initial weights and of the dropout masks. Default: random. */
  readonly seed?: number;
}

export interface MultiheadAttentionCall {
  /** [B, S] (or [S] unbatched): bool true = this key is ignored, or float added to the scores. */
  readonly keyPaddingMask?: Tensor | null;
  /** Also return attention weights (default true, as PyTorch). Runs the math backend; false lets SDPA choose. */
  readonly needWeights?: boolean;
  /** [L, S] or [B·numHeads, L, S]: bool true = NOT allowed to attend, or float added to the scores. */
  readonly attnMask?: Tensor | null;
  /** Average the weights over heads ([B, L, S]) or not ([B, H, L, S]). Default true. */
  readonly averageAttnWeights?: boolean;
  /** Causal (top-left) masking. Unlike PyTorch it needs no attnMask; given one too, both apply. */
  readonly isCausal?: boolean;
}

export interface MultiheadAttentionResult {
  /** [B, L, E] (batchFirst), [L, B, E] otherwise, [L, E] unbatched. */
  readonly output: Tensor;
  /** Attention weights after dropout, or null when needWeights is false. */
  readonly weights: Tensor | null;
}

/**
 * torch.nn.MultiheadAttention on webattn: the same constructor options, forward arguments, mask polarity
 * (bool true = masked OUT) and state-dict names (in_proj_weight [3E, E] or q/k/v_proj_weight, in_proj_bias,
 * bias_k, bias_v, out_proj.weight, out_proj.bias). Attention itself is one scaledDotProductAttention call: the
 * dispatcher picks the backend (needWeights asks for the weights, which only the math/cpu backends give, and the
 * dispatch log says so). Rows whose keys are all masked give 0 where PyTorch gives NaN.
 */
export class MultiheadAttention extends Module {
  readonly headDim: number;
  readonly kdim: number;
  readonly vdim: number;
  readonly dropout: number;
  readonly batchFirst: boolean;
  readonly addZeroAttn: boolean;
  /** One [3E, E] weight when kdim = vdim = E, else null. */
  readonly inProjWeight: Tensor | null;
  readonly qProjWeight: Tensor | null;
  readonly kProjWeight: Tensor | null;
  readonly vProjWeight: Tensor | null;
  readonly inProjBias: Tensor | null;
  readonly biasK: Tensor | null;
  readonly biasV: Tensor | null;
  readonly outProj: Linear;
  private readonly dropoutSeeds: SeedSequence;

  constructor(
    device: Device,
    readonly embedDim: number,
    readonly numHeads: number,
    options: MultiheadAttentionOptions = {},
  ) {
    super(device);
    checkFeatures('MultiheadAttention', { embedDim, numHeads });
    this.kdim = options.kdim ?? embedDim;
    this.vdim = options.vdim ?? embedDim;
    checkFeatures('MultiheadAttention', { kdim: this.kdim, vdim: this.vdim });
    if (embedDim % numHeads !== 0) {
      throw new InvalidArgumentError(
        `MultiheadAttention: embedDim ${embedDim} must be divisible by numHeads ${numHeads} (head dim = embedDim / numHeads)`,
      );
    }
    this.headDim = embedDim / numHeads;
    this.dropout = options.dropout ?? 0;
    checkProbability('MultiheadAttention', this.dropout);
    this.batchFirst = options.batchFirst ?? false;
    this.addZeroAttn = options.addZeroAttn ?? false;
    const seeds = new SeedSequence(options.seed);
    this.dropoutSeeds = new SeedSequence(seeds.take());
    const bias = options.bias ?? true;
    const E = embedDim;
    // PyTorch's _reset_parameters: xavier_uniform_ on the projection weights, zero biases, xavier_normal_ bias_k/v.
    const xavier = (fanOut: number, fanIn: number) => Math.sqrt(6 / (fanIn + fanOut));
    const sameDims = this.kdim === E && this.vdim === E;
    this.inProjWeight = this.registerParameter(
      'in_proj_weight',
      sameDims ? uniformParameter(device, [3 * E, E], xavier(3 * E, E), seeds.take()) : null,
    );
    this.qProjWeight = this.registerParameter(
      'q_proj_weight',
      sameDims ? null : uniformParameter(device, [E, E], xavier(E, E), seeds.take()),
    );
    this.kProjWeight = this.registerParameter(
      'k_proj_weight',
      sameDims ? null : uniformParameter(device, [E, this.kdim], xavier(E, this.kdim), seeds.take()),
    );
    this.vProjWeight = this.registerParameter(
      'v_proj_weight',
      sameDims ? null : uniformParameter(device, [E, this.vdim], xavier(E, this.vdim), seeds.take()),
    );
    this.inProjBias = this.registerParameter('in_proj_bias', bias ? constantParameter(device, [3 * E], 0) : null);
    const addBiasKV = options.addBiasKV ?? false;
    const xavierNormal = Math.sqrt(2 / (E + E)); // fan_in = fan_out = E for a [1, 1, E] tensor
    this.biasK = this.registerParameter('bias_k', addBiasKV ? normalParameter(device, [1, 1, E], xavierNormal, seeds.take()) : null);
    this.biasV = this.registerParameter('bias_v', addBiasKV ? normalParameter(device, [1, 1, E], xavierNormal, seeds.take()) : null);
    this.outProj = this.registerModule('out_proj', new Linear(device, E, E, { bias, seed: seeds.take() }));
    if (bias) {
      // PyTorch zeroes out_proj.bias in _reset_parameters.
      this.outProj.loadStateDict({ bias: { shape: [E], data: new Float32Array(E) } }, { strict: false });
    }
  }

  forward(query: Tensor, key: Tensor, value: Tensor, call: MultiheadAttentionCall = {}): MultiheadAttentionResult {
    const E = this.embedDim;
    const H = this.numHeads;
    const D = this.headDim;
    const unbatched = query.rank === 2;
    this.checkInputs(query, key, value, unbatched);
    // Everything below works on batch-first [B, L, E] views.
    const toBatchFirst = (x: Tensor) => (unbatched ? x.unsqueeze(0) : this.batchFirst ? x : x.transpose(0, 1));
    const q0 = toBatchFirst(query);
    const k0 = toBatchFirst(key);
    const v0 = toBatchFirst(value);
    const B = q0.shape[0]!;
    const L = q0.shape[1]!;
    const S = k0.shape[1]!;
    if (k0.shape[0] !== B || v0.shape[0] !== B || v0.shape[1] !== S) {
      for (const view of [q0, k0, v0]) if (view !== query && view !== key && view !== value) view.dispose();
      throw new ShapeError(
        `MultiheadAttention: query ${formatShape(query.shape)}, key ${formatShape(key.shape)} and value ${formatShape(value.shape)} disagree on batch or key length${this.batchFirst ? '' : ' (batchFirst is false: inputs are [L, B, E])'}`,
      );
    }

    const scratch = new Scratch();
    try {
      // The masks first: a bad mask throws before the projections record anything.
      const extraKeys = (this.biasK ? 1 : 0) + (this.addZeroAttn ? 1 : 0);
      const keyPaddingMask =
        call.keyPaddingMask && unbatched ? scratch.own(call.keyPaddingMask.unsqueeze(0)) : call.keyPaddingMask;
      const attnMask = multiheadMaskToSdpa({
        keyPaddingMask,
        attnMask: call.attnMask,
        batch: B,
        heads: H,
        queryLength: L,
        keyLength: S,
        extraKeys,
      });
      if (attnMask) scratch.own(attnMask);
      let [q, k, v] = this.project(q0, k0, v0).map((t) => scratch.own(t)) as [Tensor, Tensor, Tensor];
      if (this.biasK && this.biasV) {
        k = scratch.own(cat([k, scratch.own(this.biasK.expand([B, 1, E]))], 1));
        v = scratch.own(cat([v, scratch.own(this.biasV.expand([B, 1, E]))], 1));
      }
      // [B, L, E] → [B, H, L, D] views: SDPA reads any strides.
      const heads = (x: Tensor) => scratch.own(scratch.own(x.reshape([B, x.shape[1]!, H, D])).transpose(1, 2));
      let qh = heads(q);
      let kh = heads(k);
      let vh = heads(v);
      if (this.addZeroAttn) {
        const zero = scratch.own(zeros(this.device, [B, H, 1, D]));
        kh = scratch.own(cat([kh, zero], 2));
        vh = scratch.own(cat([vh, zero], 2));
      }
      const dropoutP = this.training ? this.dropout : 0;
      const options = {
        ...(attnMask ? { attnMask } : {}),
        ...(call.isCausal ? { isCausal: true } : {}),
        ...(dropoutP > 0 ? { dropoutP, dropoutSeed: this.dropoutSeeds.take() } : {}),
      };
      let attended: Tensor;
      let weights: Tensor | null = null;
      if (call.needWeights ?? true) {
        const result = scaledDotProductAttentionWithWeights(qh, kh, vh, options);
        attended = scratch.own(result.output);
        let perCall = result.weights;
        if (call.averageAttnWeights !== false) {
          perCall = mean(result.weights, [1]);
          result.weights.dispose();
        }
        weights = unbatched ? perCall.reshape(perCall.shape.slice(1)) : perCall;
        if (weights !== perCall) perCall.dispose();
      } else {
        attended = scratch.own(scaledDotProductAttention(qh, kh, vh, options));
      }
      // [B, H, L, D] → [B, L, E], then the output projection.
      const merged = scratch.own(scratch.own(attended.transpose(1, 2)).reshape([B, L, E]));
      const projected = this.outProj.forward(merged);
      if (!unbatched && this.batchFirst) return { output: projected, weights };
      const output = unbatched ? projected.reshape([L, E]) : projected.transpose(0, 1);
      projected.dispose();
      return { output, weights };
    } finally {
      scratch.dispose();
      for (const view of [q0, k0, v0]) if (view !== query && view !== key && view !== value) view.dispose();
    }
  }

  /**
   * The q, k, v projections ([B, L|S, E]): three matmuls on row slices of in_proj_weight (views), so each result
   * is contiguous and splits into heads without a copy.
   */
  private project(query: Tensor, key: Tensor, value: Tensor): [Tensor, Tensor, Tensor] {
    const E = this.embedDim;
    const bias = (index: number) => (this.inProjBias ? narrow(this.inProjBias, 0, index * E, E) : null);
    const weight = (index: number) =>
      this.inProjWeight ? narrow(this.inProjWeight, 0, index * E, E) : [this.qProjWeight!, this.kProjWeight!, this.vProjWeight!][index]!;
    return [query, key, value].map((input, index) => {
      const w = weight(index);
      const b = bias(index);
      const out = linear(input, w, b);
      if (this.inProjWeight) w.dispose();
      b?.dispose();
      return out;
    }) as [Tensor, Tensor, Tensor];
  }

  private checkInputs(query: Tensor, key: Tensor, value: Tensor, unbatched: boolean): void {
    const rank = unbatched ? 2 : 3;
    const expect = [
      ['query', query, this.embedDim],
      ['key', key, this.kdim],
      ['value', value, this.vdim],
    ] as const;
    for (const [name, x, features] of expect) {
      if (x.rank !== rank || x.shape[rank - 1] !== features) {
        const layout = unbatched ? '[L, E]' : this.batchFirst ? '[B, L, E]' : '[L, B, E]';
        throw new ShapeError(
          `MultiheadAttention: ${name} must be ${layout} with ${features} features (query sets the rank: ${query.rank}), got ${formatShape(x.shape)}`,
        );
      }
    }
  }
}
