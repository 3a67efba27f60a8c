/**
 * The contract between the dispatcher and one backend. Each backend is one small adapter module in
 * `src/backends/` that wraps its package (@webattn/flash, @webattn/reference) behind this interface: an ordered
 * list of named checks, a cost estimate, and the forward (and, where it has one, backward) functions of the
 * tensor-level attention contract.
 */
import type { AttentionProblem, DeviceCaps, Rejection, Tensor } from '@webattn/tensor';
import type { CostCalibration } from './cost-model';

export const SDPA_BACKEND_NAMES = ['flash', 'efficient', 'math', 'cpu'] as const;
export type SdpaBackendName = (typeof SDPA_BACKEND_NAMES)[number];

/** Where the tensors live: what the checks may look at besides the problem. */
export interface SdpaTarget {
  readonly kind: 'gpu' | 'cpu';
  readonly caps: DeviceCaps;
  /** The adapter description (device.info.adapter): picks the cost model's calibration. */
  readonly adapter: string;
}

/** Which backends the caller allows, and who said so (for messages). null = no restriction. */
export interface SdpaRestriction {
  readonly backends: readonly SdpaBackendName[];
  readonly source: 'backends option' | 'withSdpaBackends';
}

/** Everything a check may look at: the problem, the device, and the caller's restriction. */
export interface SdpaRequest {
  readonly problem: AttentionProblem;
  readonly target: SdpaTarget;
  readonly restriction: SdpaRestriction | null;
}

/** One named condition: returns a rejection (or several, when it wraps a backend package's own checks), or nothing. */
export interface SdpaCheck {
  readonly name: string;
  check(backend: SdpaBackendName, request: SdpaRequest): Rejection | readonly Rejection[] | null;
}

/** Forward result of the tensor-level attention contract. */
export interface AttentionOutputs {
  readonly out: Tensor;
  /** f32 [B, Hq, L], natural log; every backend returns it (backward needs it). */
  readonly logsumexp: Tensor;
  readonly weights?: Tensor | undefined;
}

export interface AttentionGradients {
  readonly dq: Tensor;
  readonly dk: Tensor;
  readonly dv: Tensor;
}

/** Options exactly as the backends receive them (the dispatcher's own `backends` option removed). */
export type BackendOptions = Record<string, unknown>;

export interface SdpaBackend {
  readonly name: SdpaBackendName;
  /** One line for explain output and docs. */
  readonly description: string;
  /** Ordered: every check runs (explain shows every reason), the order is the order of the messages. */
  readonly checks: readonly SdpaCheck[];
  /** Whether forward can return the attention weights. */
  readonly producesWeights: boolean;
  /** Estimated microseconds with a calibration (see cost-model.ts); only compared between backends. */
  estimateMicroseconds(problem: AttentionProblem, calibration: CostCalibration): number;
  forward(q: Tensor, k: Tensor, v: Tensor, options: BackendOptions): AttentionOutputs;
  /** null: this backend has no backward; the dispatcher runs math's (or cpu's) and logs it. */
  readonly backward:
    | ((
        q: Tensor,
        k: Tensor,
        v: Tensor,
        out: Tensor,
        logsumexp: Tensor,
        gradOut: Tensor,
        options: BackendOptions,
      ) => AttentionGradients)
    | null;
}
