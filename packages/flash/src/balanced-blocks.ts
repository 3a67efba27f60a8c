import type { AttentionProblem } from '@webattn/tensor';

/**
 * Causal balance. Under a causal mask (or a window open on one side) row block x attends about x + 1 key tiles, so
 * a dispatch of one workgroup per block runs its last workgroups alone, long after the short ones finished. Paired,
 * a kernel runs half as many workgroups and workgroup x takes blocks x and blocks − 1 − x (flash-common.wgsl's
 * mirrored_block): every workgroup attends about as many tiles. Uniform `paired_blocks` switches it per dispatch.
 */
export function pairsMirroredBlocks(problem: Pick<AttentionProblem, 'causal' | 'window'>): boolean {
  const window = problem.window;
  return problem.causal || (window !== null && window.left < 0 !== window.right < 0);
}

/** Workgroups along x for `blocks` blocks: half of them, rounded up, when paired. */
export function pairedWorkgroups(blocks: number, paired: boolean): number {
  return paired ? Math.ceil(blocks / 2) : blocks;
}
