/** Adapter: the float64 reference of @webattn/reference on CPU tensors (every feature, weights, backward). */
import { cpuAttention, cpuAttentionBackward } from '@webattn/reference';
import type { SdpaBackend } from '../backend';
import { allowedCheck, deviceKindCheck } from '../checks';
import { estimateCpu } from '../cost-model';

export const cpuBackend: SdpaBackend = {
  name: 'cpu',
  description: 'float64 reference on CPU tensors: every feature, returns weights; for devices without WebGPU',
  checks: [allowedCheck, deviceKindCheck('cpu')],
  producesWeights: true,
  estimateMicroseconds: (problem, calibration) => estimateCpu(problem, calibration).microseconds,
  forward: (q, k, v, options) => cpuAttention(q, k, v, options),
  backward: (q, k, v, out, logsumexp, gradOut, options) => cpuAttentionBackward(q, k, v, out, logsumexp, gradOut, options),
};
