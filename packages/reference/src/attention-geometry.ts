import { alignedPosition, type AttentionProblem } from '@webattn/tensor';

/**
 * Where one sequence of a batch lives and which keys its rows may see: the part of attention that does not
 * depend on values. Shared by the float64 reference and the WGSL math backend (which uploads it per batch).
 */
export interface SequenceBounds {
  /** First query row of this sequence in the q tensor's sequence axis (0 unless packed varlen). */
  readonly queryStart: number;
  /** Query rows this sequence has (L, or its packed length). */
  readonly queryRows: number;
  readonly keyStart: number;
  /** Key rows present in the k/v tensors for this sequence (S, or its packed length). */
  readonly keyRows: number;
  /** Keys j < keyValid may be attended (key lengths, else keyRows). */
  readonly keyValid: number;
  /** pos(i) = i + diagonalShift: 0 for top-left, S − L for bottom-right (per sequence when packed). */
  readonly diagonalShift: number;
}

export interface SequenceOptions {
  readonly keyLengths?: readonly number[] | Uint32Array | undefined;
  readonly cuSeqlensQ?: readonly number[] | Uint32Array | undefined;
  readonly cuSeqlensK?: readonly number[] | Uint32Array | undefined;
}

export function sequenceBounds(problem: AttentionProblem, options: SequenceOptions): SequenceBounds[] {
  const bounds: SequenceBounds[] = [];
  for (let b = 0; b < problem.batch; b++) {
    let queryStart = 0;
    let queryRows = problem.queryLength;
    let keyStart = 0;
    let keyRows = problem.keyLength;
    let keyValid = options.keyLengths ? options.keyLengths[b]! : keyRows;
    if (problem.varlen && options.cuSeqlensQ && options.cuSeqlensK) {
      queryStart = options.cuSeqlensQ[b]!;
      queryRows = options.cuSeqlensQ[b + 1]! - queryStart;
      keyStart = options.cuSeqlensK[b]!;
      keyRows = options.cuSeqlensK[b + 1]! - keyStart;
      keyValid = keyRows;
    }
    const diagonalShift = alignedPosition(0, queryRows, keyRows, problem.causalAlignment);
    bounds.push({ queryStart, queryRows, keyStart, keyRows, keyValid, diagonalShift });
  }
  return bounds;
}

/**
 * The keys row i may see by key-length, causal and window rules, as a half-open range [start, end) (empty when
 * start ≥ end). Masks are applied separately.
 */
export function allowedKeyRange(problem: AttentionProblem, sequence: SequenceBounds, row: number): [number, number] {
  let start = 0;
  let end = Math.min(sequence.keyValid, sequence.keyRows);
  const position = row + sequence.diagonalShift;
  if (problem.causal) end = Math.min(end, position + 1);
  const window = problem.window;
  if (window) {
    if (window.left >= 0) start = Math.max(start, position - window.left);
    if (window.right >= 0) end = Math.min(end, position + window.right + 1);
  }
  return [start, end];
}

/** Whether row i may see key j by key-length, causal and window rules (masks are applied separately). */
export function keyAllowed(problem: AttentionProblem, sequence: SequenceBounds, row: number, column: number): boolean {
  const [start, end] = allowedKeyRange(problem, sequence, row);
  return column >= start && column < end;
}
