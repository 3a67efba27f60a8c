import { WebattnError, type Rejection } from '@webattn/tensor';
import type { SdpaBackendName } from './backend';

/**
 * No backend the caller allowed can run this problem. The message lists every rejection of every requested
 * backend, one per line, so the fix (a smaller head dim, another dtype, allowing math) is visible at once.
 */
export class NoEligibleBackendError extends WebattnError {
  override name = 'NoEligibleBackendError';
  constructor(
    readonly requested: readonly SdpaBackendName[],
    readonly rejections: readonly Rejection[],
    problemSummary: string,
  ) {
    super(
      `scaledDotProductAttention: no eligible backend among [${requested.join(', ')}] for ${problemSummary}.\n` +
        `Rejected backends:\n${rejections.map((item) => item.message).join('\n')}`,
    );
  }
}
