/** Adapter: the materialising WGSL "math" attention of @webattn/reference (S = QKᵀ, softmax, PV; returns weights). */
import { checkMath, mathAttention, mathAttentionBackward } from '@webattn/reference';
import type { SdpaBackend } from '../backend';
import { allowedCheck, deviceKindCheck, packageChecks } from '../checks';
import { estimateMath } from '../cost-model';

/**
 * Math's limits (also asked by 'efficient', whose backward runs on math): storage buffers, the f32 scores
 * [B, Hq, L, S] within one binding, and reference's default memory budget (1 GiB) for the whole call.
 */
export const mathKernelLimits = packageChecks('kernelLimits', (problem, caps) => checkMath(problem, caps));

export const mathBackend: SdpaBackend = {
  name: 'math',
  description: 'materialised WGSL attention (QKᵀ, softmax, PV): every feature, returns weights, O(L·S) memory',
  checks: [
    allowedCheck,
    deviceKindCheck('gpu'),
    mathKernelLimits,
  ],
  producesWeights: true,
  estimateMicroseconds: (problem, calibration) => estimateMath(problem, calibration).microseconds,
  forward: (q, k, v, options) => mathAttention(q, k, v, options),
  backward: (q, k, v, out, logsumexp, gradOut, options) => mathAttentionBackward(q, k, v, out, logsumexp, gradOut, options),
};
