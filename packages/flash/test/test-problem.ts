/**
 * Attention problems for tests that need no tensors (planning, checks, choices): a shape and its layouts, every
 * option off unless overridden.
 */
import type { AttentionProblem } from '@webattn/tensor';

export type ProblemShape = Pick<
  AttentionProblem,
  'batch' | 'queryHeads' | 'kvHeads' | 'queryLength' | 'keyLength' | 'headDimQk' | 'headDimV' | 'dtype' | 'scale' | 'layout'
>;

export function testProblem(shape: ProblemShape, overrides: Partial<AttentionProblem> = {}): AttentionProblem {
  return {
    ...shape,
    mask: { kind: 'none' },
    keyLengths: false,
    varlen: false,
    causal: false,
    window: null,
    causalAlignment: 'top-left',
    softcap: null,
    dropout: null,
    needWeights: false,
    requiresGrad: false,
    ...overrides,
  };
}
