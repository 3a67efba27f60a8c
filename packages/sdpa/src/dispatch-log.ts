/**
 * The dispatch log: every scaledDotProductAttention call (forward, and backward when autograd runs it) tells its
 * listeners which backend ran and why. The debug switch prints each distinct choice once:
 * - Node: environment variable WEBATTN_DEBUG containing `sdpa` (comma-separated list, e.g. `WEBATTN_DEBUG=sdpa`);
 * - browsers: `localStorage.setItem('WEBATTN_DEBUG', 'sdpa')` (read on each call, so no reload is needed).
 */
import type { AttentionProblem, Rejection } from '@webattn/tensor';
import type { SdpaBackendName } from './backend';

export interface SdpaDispatchEvent {
  readonly phase: 'forward' | 'backward';
  readonly backend: SdpaBackendName;
  /** Why this backend ran, in words ("flash: lowest estimated cost (…)", "math: needWeights …"). */
  readonly reason: string;
  /** One-line problem summary, e.g. "B2 Hq8 Hkv2 L17 S23 D16/16 f32 gpu mask=bool causal(top-left)". */
  readonly summary: string;
  readonly problem: AttentionProblem;
  /** Rejections of the backends that did not qualify (those outside a restriction included). */
  readonly rejections: readonly Rejection[];
}

export type SdpaDispatchListener = (event: SdpaDispatchEvent) => void;

const listeners = new Set<SdpaDispatchListener>();
const printed = new Set<string>();

/** Subscribes to every dispatch; returns the unsubscribe function. */
export function onSdpaDispatch(listener: SdpaDispatchListener): () => void {
  listeners.add(listener);
  return () => {
    listeners.delete(listener);
  };
}

function debugSetting(): string {
  const host = globalThis as {
    process?: { env?: Record<string, string | undefined> };
    localStorage?: { getItem(key: string): string | null };
  };
  try {
    return host.process?.env?.WEBATTN_DEBUG ?? host.localStorage?.getItem('WEBATTN_DEBUG') ?? '';
  } catch {
    return ''; // localStorage throws in some sandboxed frames
  }
}

export function sdpaDebugEnabled(): boolean {
  return debugSetting()
    .split(/[\s,]+/)
    .some((item) => item === 'sdpa' || item === '*' || item === 'all');
}

export function emitSdpaDispatch(event: SdpaDispatchEvent): void {
  if (sdpaDebugEnabled()) {
    const key = `${event.phase} ${event.backend} ${event.summary} ${event.reason}`;
    if (!printed.has(key)) {
      printed.add(key);
      console.info(`[webattn:sdpa] ${event.phase} ${event.summary} → ${event.backend}: ${event.reason}`);
    }
  }
  for (const listener of listeners) listener(event);
}

/** Forget what the debug printer has already shown (tests). */
export function resetSdpaDebugLog(): void {
  printed.clear();
}

/** "B2 Hq8 Hkv2 L17 S23 D16/16 f32 gpu mask=bool causal(top-left) dropout=0.1 weights grad". */
export function summarizeProblem(problem: AttentionProblem, device: 'gpu' | 'cpu'): string {
  const parts = [
    `B${problem.batch}`,
    `Hq${problem.queryHeads}`,
    `Hkv${problem.kvHeads}`,
    `L${problem.queryLength}`,
    `S${problem.keyLength}`,
    `D${problem.headDimQk}/${problem.headDimV}`,
    problem.dtype,
    device,
  ];
  if (problem.mask.kind !== 'none') parts.push(`mask=${problem.mask.kind}`);
  if (problem.causal) parts.push(`causal(${problem.causalAlignment})`);
  if (problem.window) parts.push(`window=(${problem.window.left},${problem.window.right})`);
  if (problem.softcap !== null) parts.push(`softcap=${problem.softcap}`);
  if (problem.keyLengths) parts.push('keyLengths');
  if (problem.varlen) parts.push('varlen');
  if (problem.dropout) parts.push(`dropout=${problem.dropout.p}`);
  if (problem.needWeights) parts.push('weights');
  if (problem.requiresGrad) parts.push('grad');
  return parts.join(' ');
}
