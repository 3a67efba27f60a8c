/**
 * Test helper (not exported from the package): real AttentionProblems described from CPU tensors, and the
 * capabilities of a typical GPU for checks that look at a hypothetical device.
 */
import { cpuDevice, describeAttention, zeros, type AttentionOptions, type AttentionProblem, type DeviceCaps } from '@webattn/tensor';
import type { SdpaTarget } from './backend';

export interface ProblemShape {
  readonly batch?: number;
  readonly queryHeads?: number;
  readonly kvHeads?: number;
  readonly queryLength?: number;
  readonly keyLength?: number;
  readonly headDim?: number;
  readonly headDimV?: number;
  readonly dtype?: 'f32' | 'f16';
}

/** Describes a problem with describeAttention on zero-filled CPU tensors (cheap; nothing runs). */
export function describeShape(shape: ProblemShape = {}, options: AttentionOptions = {}): AttentionProblem {
  const device = cpuDevice();
  const { batch = 1, queryHeads = 2, kvHeads = queryHeads, queryLength = 8, keyLength = 8, headDim = 16 } = shape;
  const dtype = shape.dtype ?? 'f32';
  const q = zeros(device, [batch, queryHeads, queryLength, headDim], { dtype });
  const k = zeros(device, [batch, kvHeads, keyLength, headDim], { dtype });
  const v = zeros(device, [batch, kvHeads, keyLength, shape.headDimV ?? headDim], { dtype });
  return describeAttention(q, k, v, { enableGqa: queryHeads !== kvHeads, ...options });
}

/** Capabilities like lavapipe's (what the brief lists), to explain GPU problems without a GPU. */
export const LAVAPIPE_LIKE_CAPS: DeviceCaps = {
  features: new Set(['shader-f16', 'subgroups']),
  shaderF16: true,
  subgroups: true,
  timestampQuery: false,
  subgroupMatrix: false,
  subgroupMinSize: 8,
  subgroupMaxSize: 8,
  subgroupMatrixConfigs: [],
  maxComputeWorkgroupStorageSize: 32768,
  maxComputeInvocationsPerWorkgroup: 256,
  maxComputeWorkgroupSizeX: 256,
  maxComputeWorkgroupsPerDimension: 65535,
  maxStorageBufferBindingSize: 128 * 1024 * 1024,
  maxBufferSize: 256 * 1024 * 1024,
  maxStorageBuffersPerShaderStage: 8,
};

export const LAVAPIPE_ADAPTER = 'mesa software (llvmpipe: Mesa 25.0.7-2~bpo12+1 (LLVM 15.0.6) 0.0.1)';
export const H100_ADAPTER = 'nvidia (NVIDIA: 580.159.04 580.159.4.0)';

export const GPU_TARGET: SdpaTarget = { kind: 'gpu', caps: LAVAPIPE_LIKE_CAPS, adapter: LAVAPIPE_ADAPTER };
