/**
 * Adapter: the split-KV (flash-decoding) kernel of @webattn/flash, for few queries over long keys. It has no
 * backward of its own: gradients run on math, and the dispatch log says so.
 */
import { checkSplitKv, splitKvAttention } from '@webattn/flash';
import type { SdpaBackend } from '../backend';
import { allowedCheck, decodeShapeCheck, deviceKindCheck, packageChecks, weightsCheck } from '../checks';
import { estimateSplitKv } from '../cost-model';

export const efficientBackend: SdpaBackend = {
  name: 'efficient',
  description: 'split-KV flash-decoding (WGSL) for decode shapes (L ≤ 16, S ≥ 1024); backward runs on math',
  checks: [
    allowedCheck,
    deviceKindCheck('gpu'),
    weightsCheck,
    decodeShapeCheck,
    packageChecks('kernelLimits', (problem, caps) => checkSplitKv(problem, caps)),
  ],
  producesWeights: false,
  estimateMicroseconds: (problem) => estimateSplitKv(problem).microseconds,
  forward: (q, k, v, options) => splitKvAttention(q, k, v, options),
  backward: null,
};
