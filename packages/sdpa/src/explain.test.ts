/**
 * The selection logic on its own, over a backend list made of the real dispatcher checks and cost estimates;
 * nothing runs (forward is never called by explain). The registry's real backends are covered by
 * explain-table.test.ts.
 */
import { describe, expect, it } from 'vitest';
import type { SdpaBackend, SdpaBackendName, SdpaCheck } from './backend';
import { allowedCheck, deviceKindCheck, weightsCheck } from './checks';
import { rejection } from '@webattn/tensor';

/** The decode-shape policy as a check of its own (the real one lives in @webattn/flash's checkSplitKv). */
const decodeShapeCheck: SdpaCheck = {
  name: 'decodeShape',
  check(backend, { problem }) {
    const out = [];
    if (problem.queryLength > 16) out.push(rejection(backend, 'query length', problem.queryLength, '≤ 16'));
    if (problem.keyLength < 1024) out.push(rejection(backend, 'key length', problem.keyLength, '≥ 1024'));
    return out.length ? out : null;
  },
};
import { estimateCpu, estimateFlash, estimateMath, estimateSplitKv } from './cost-model';
import { explainRequest } from './explain';
import { GPU_TARGET, describeShape } from './test-problems';

const notRun = () => {
  throw new Error('explain must not run a backend');
};

function backend(name: SdpaBackendName, checks: SdpaBackend['checks'], estimate: (p: Parameters<typeof estimateFlash>[0]) => number): SdpaBackend {
  return { name, description: name, checks, producesWeights: false, estimateMicroseconds: estimate, forward: notRun, backward: null };
}

const list: SdpaBackend[] = [
  backend('flash', [allowedCheck, deviceKindCheck('gpu'), weightsCheck], (p) => estimateFlash(p).microseconds),
  backend('efficient', [allowedCheck, deviceKindCheck('gpu'), weightsCheck, decodeShapeCheck], (p) => estimateSplitKv(p).microseconds),
  backend('math', [allowedCheck, deviceKindCheck('gpu')], (p) => estimateMath(p).microseconds),
  backend('cpu', [allowedCheck, deviceKindCheck('cpu')], (p) => estimateCpu(p).microseconds),
];

describe('explainRequest', () => {
  it('runs every check of every backend and reports all rejections in check order', () => {
    const result = explainRequest(
      { problem: describeShape({ queryLength: 40, keyLength: 8 }, { needWeights: true }), target: GPU_TARGET, restriction: { backends: ['math'], source: 'backends option' } },
      list,
    );
    expect(result.chosen).toBe('math');
    const efficient = result.backends.find((item) => item.name === 'efficient')!;
    expect(efficient.rejections.map((item) => item.check)).toEqual(['allowed', 'needWeights', 'query length', 'key length']);
    expect(result.backends.map((item) => item.eligible)).toEqual([false, false, true, false]);
    expect(result.reason).toMatch(/^math: needWeights: only math and cpu return the attention weights; forced by the backends option \[math\]/);
  });

  it('picks the lowest estimate among eligible backends and says so with the numbers', () => {
    const decode = describeShape({ queryLength: 1, keyLength: 4096, queryHeads: 2, headDim: 64 });
    const result = explainRequest({ problem: decode, target: GPU_TARGET, restriction: null }, list);
    const estimates = Object.fromEntries(result.backends.map((item) => [item.name, item.estimatedMicroseconds]));
    const eligible = result.backends.filter((item) => item.eligible).map((item) => item.name);
    expect(eligible).toEqual(['flash', 'efficient', 'math']);
    const cheapest = eligible.reduce((best, name) => (estimates[name]! < estimates[best]! ? name : best));
    expect(result.chosen).toBe(cheapest);
    expect(result.reason).toContain('lowest estimated cost (');
    expect(estimates.cpu).toBeNull();
  });

  it('breaks ties by priority order', () => {
    const flat = list.map((item) => ({ ...item, estimateMicroseconds: () => 1 }));
    const result = explainRequest({ problem: describeShape(), target: GPU_TARGET, restriction: null }, flat);
    expect(result.chosen).toBe('flash');
    const reordered = [flat[2]!, flat[0]!, flat[1]!, flat[3]!];
    expect(explainRequest({ problem: describeShape(), target: GPU_TARGET, restriction: null }, reordered).chosen).toBe('math');
  });

  it('returns chosen null when nothing qualifies', () => {
    const result = explainRequest(
      { problem: describeShape(), target: GPU_TARGET, restriction: { backends: ['cpu'], source: 'withSdpaBackends' } },
      list,
    );
    expect(result.chosen).toBeNull();
    expect(result.backends.find((item) => item.name === 'cpu')!.rejections[0]!.message).toBe(
      'cpu: device gpu tensors, need cpu tensors (the cpu backend runs on CPU tensors only)',
    );
  });
});
