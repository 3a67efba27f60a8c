/**
 * Dispatcher-level checks shared by the backend adapters. Each is small, named, and returns a Rejection that
 * states what it got and what it needs, or null. Kernel limits (head dims, workgroup storage, dtype support) are
 * the backend packages' own checks, wrapped by `packageChecks`.
 */
import { rejection, type AttentionProblem, type DeviceCaps, type Rejection } from '@webattn/tensor';
import type { SdpaBackendName, SdpaCheck, SdpaRequest } from './backend';

/** Forcing and disabling are this one check: the backend must be in the caller's restriction, if any. */
export const allowedCheck: SdpaCheck = {
  name: 'allowed',
  check(backend, { restriction }) {
    if (!restriction || restriction.backends.includes(backend)) return null;
    return rejection(
      backend,
      'allowed',
      `not in [${restriction.backends.join(', ')}]`,
      `'${backend}' listed`,
      `restricted by the ${restriction.source}`,
    );
  },
};

/** The tensors must live where the backend runs. */
export function deviceKindCheck(kind: 'gpu' | 'cpu'): SdpaCheck {
  return {
    name: 'device',
    check(backend, { target }) {
      if (target.kind === kind) return null;
      return rejection(
        backend,
        'device',
        `${target.kind} tensors`,
        `${kind} tensors`,
        kind === 'gpu' ? 'move them with tensor.to(gpuDevice)' : `the ${backend} backend runs on CPU tensors only`,
      );
    },
  };
}

/** Only backends that materialise the attention matrix can return it. */
export const weightsCheck: SdpaCheck = {
  name: 'needWeights',
  check(backend, { problem }) {
    if (!problem.needWeights) return null;
    return rejection(backend, 'needWeights', 'true', 'false', 'only math and cpu materialise the attention weights');
  },
};

/** Wraps a backend package's own check function (kernel limits) as one named check of the list. */
export function packageChecks(
  name: string,
  run: (problem: AttentionProblem, caps: DeviceCaps, request: SdpaRequest) => Rejection | readonly Rejection[] | null | undefined,
  onlyOn: 'gpu' | 'cpu' | null = 'gpu',
): SdpaCheck {
  return {
    name,
    check(backend: SdpaBackendName, request) {
      // A GPU kernel's limits mean nothing for CPU tensors (the device check already rejected them).
      if (onlyOn && request.target.kind !== onlyOn) return null;
      const result = run(request.problem, request.target.caps, request);
      if (!result) return null;
      const list = Array.isArray(result) ? (result as readonly Rejection[]) : [result as Rejection];
      // Backends name themselves; keep the dispatcher's name so 'efficient' (split-KV) reads as one backend.
      return list.map((item) =>
        item.backend === backend ? item : { ...item, backend, message: item.message.replace(/^[^:]*:/, `${backend}:`) },
      );
    },
  };
}
