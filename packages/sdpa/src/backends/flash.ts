/** Adapter: the tiled FlashAttention kernels of @webattn/flash (forward and backward, no N×N buffer). */
import { checkFlash, flashAttention, flashAttentionGrad } from '@webattn/flash';
import type { SdpaBackend } from '../backend';
import { allowedCheck, deviceKindCheck, packageChecks, weightsCheck } from '../checks';
import { estimateFlash } from '../cost-model';

export const flashBackend: SdpaBackend = {
  name: 'flash',
  description: 'tiled FlashAttention (WGSL): online softmax, no L×S buffer; forward and backward',
  checks: [
    allowedCheck,
    deviceKindCheck('gpu'),
    weightsCheck,
    packageChecks('kernelLimits', (problem, caps) => checkFlash(problem, caps)),
  ],
  producesWeights: false,
  estimateMicroseconds: (problem, calibration) => estimateFlash(problem, calibration).microseconds,
  forward: (q, k, v, options) => flashAttention(q, k, v, options),
  backward: (q, k, v, out, logsumexp, gradOut, options) => flashAttentionGrad(q, k, v, out, logsumexp, gradOut, options),
};
