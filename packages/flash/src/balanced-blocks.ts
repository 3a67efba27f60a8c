import type { AttentionProblem } from '@webattn/tensor';

/**
 * Causal balance. Under a causal mask (or a window open on one side) row block x attends about x + 1 key tiles, so
 * a dispatch of one workgroup per block runs its last workgroups alone, long after the short ones finished. Paired,
 * a kernel runs half as many workgroups and workgroup x takes blocks x and blocks − 1 − x (flash-common.wgsl's
 * mirrored_block): every workgroup attends about as many tiles. Uniform `paired_blocks` switches it per dispatch.
 * (The matrix dK/dV takes its heaviest key blocks first instead: heaviestKeysFirst.)
 */
export function pairsMirroredBlocks(problem: Pick<AttentionProblem, 'causal' | 'window'>): boolean {
  const window = problem.window;
  return problem.causal || (window !== null && window.left < 0 !== window.right < 0);
}

/** Workgroups along x for `blocks` blocks: half of them, rounded up, when paired. */
export function pairedWorkgroups(blocks: number, paired: boolean): number {
  return paired ? Math.ceil(blocks / 2) : blocks;
}

/**
 * Whether the tiled backward kernels (flash-backward-*-tiled.wgsl) pair their blocks under such a mask: at compiled
 * head dims up to 32 only. On an H100 (bench notes, entry 29) pairing took the seed shape's (B32 H8 N500 D16) causal
 * backward from 0.760 to 0.721 ms and B8 H16 N1024 D32's from 3.03 to 2.95; at D64 the paired kernels ran
 * B4 H16 N4096's causal backward at 49.1 ms against 44.8 (and their loop over two blocks slowed even the unpaired
 * dispatches by 4–5%, so pairing is compiled in only where it is used: the PAIRED_BLOCKS flag).
 */
export function tiledPairsBlocks(problem: Pick<AttentionProblem, 'causal' | 'window'>, headDimQk: number, headDimV: number): boolean {
  return pairsMirroredBlocks(problem) && Math.max(headDimQk, headDimV) <= 32;
}

/**
 * Whether the matrix dK/dV kernel (flash-backward-key-value-matrix.wgsl) runs its heaviest key blocks first
 * (HEAVIEST_FIRST: flash-common.wgsl's plane-chunked order) instead of pairing them: under every banded mask (causal,
 * or a window bounded on either side), where key blocks attend different numbers of query tiles. On an H200 (bench
 * notes, entry 38) the causal f16 backward ran 0.322 ms against 0.344 paired at B32 H8 N500 D16, 0.94 against 1.07 at
 * B8 H16 N1024 D32 and 24.6 against 31.5 at B1 H8 N16384 D64: one block per workgroup, the long ones started first,
 * fills the GPU better than equal pairs whose count is not a multiple of what runs at once. Compiled in only for
 * such masks: computing the order at run time slowed the unmasked D64 backward by 7%.
 */
export function heaviestKeysFirst(problem: Pick<AttentionProblem, 'causal' | 'window'>): boolean {
  const window = problem.window;
  return problem.causal || (window !== null && (window.left >= 0 || window.right >= 0));
}
