/**
 * Adapter: the split-KV (flash-decoding) kernel of @webattn/flash, for few queries over long keys (its own
 * `checkSplitKv` holds the decode-shape policy, L ≤ 16 and S ≥ 1024). The kernel is forward only, so the
 * dispatcher owns its backward: the kernel always sees requiresGrad false, and when gradients are wanted the
 * 'backwardOnMath' check makes sure math can compute them (autograd.ts runs it there and logs it).
 */
import { checkSplitKv, splitKvAttention } from '@webattn/flash';
import type { SdpaBackend, SdpaCheck } from '../backend';
import { allowedCheck, deviceKindCheck, packageChecks, weightsCheck } from '../checks';
import { estimateSplitKv } from '../cost-model';
import { mathKernelLimits } from './math';

const backwardOnMath: SdpaCheck = {
  name: 'backwardOnMath',
  check(backend, request) {
    if (!request.problem.requiresGrad || request.target.kind !== 'gpu') return null;
    const refused = mathKernelLimits.check('math', request);
    const list = refused ? (Array.isArray(refused) ? refused : [refused]) : [];
    return list.length
      ? list.map((item) => ({
          ...item,
          backend,
          check: `backward on math: ${item.check}`,
          message: `${backend}: its backward runs on math, which refuses: ${item.message}`,
        }))
      : null;
  },
};

export const efficientBackend: SdpaBackend = {
  name: 'efficient',
  description: 'split-KV flash-decoding (WGSL) for decode shapes (L ≤ 16, S ≥ 1024); backward runs on math',
  checks: [
    allowedCheck,
    deviceKindCheck('gpu'),
    weightsCheck,
    packageChecks('kernelLimits', (problem, caps) => checkSplitKv({ ...problem, requiresGrad: false }, caps)),
    backwardOnMath,
  ],
  producesWeights: false,
  estimateMicroseconds: (problem, calibration) => estimateSplitKv(problem, calibration).microseconds,
  forward: (q, k, v, options) => splitKvAttention(q, k, v, { ...options, requiresGrad: false }),
  backward: null,
};
