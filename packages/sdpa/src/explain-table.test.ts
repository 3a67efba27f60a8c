/**
 * explainSdpa for a table of requests, against the real registry (the backend packages' own checks included),
 * as snapshots: what would run, and every reason each other backend cannot. Nothing runs; problems are described
 * from CPU tensors and explained for a GPU with lavapipe's capabilities (or a variant of them).
 */
import { cpuDevice, zeros, type AttentionProblem } from '@webattn/tensor';
import { describe, expect, it } from 'vitest';
import type { SdpaBackendName, SdpaTarget } from './backend';
import { explainSdpa, explainSdpaProblem } from './sdpa';
import { GPU_TARGET, H100_ADAPTER, LAVAPIPE_LIKE_CAPS, describeShape } from './test-problems';

const withoutF16: SdpaTarget = { ...GPU_TARGET, caps: { ...LAVAPIPE_LIKE_CAPS, shaderF16: false } };
const onH100: SdpaTarget = { ...GPU_TARGET, adapter: H100_ADAPTER };
const onCpu: SdpaTarget = { kind: 'cpu', caps: cpuDevice().caps, adapter: 'cpu' };

const table: { name: string; problem: () => AttentionProblem; target?: SdpaTarget; backends?: SdpaBackendName[] }[] = [
  { name: 'plain f32 prefill', problem: () => describeShape({ queryLength: 128, keyLength: 128, headDim: 64 }) },
  { name: 'f16 on a device without shader-f16', problem: () => describeShape({ dtype: 'f16' }), target: withoutF16 },
  { name: 'head dim 512', problem: () => describeShape({ headDim: 512 }) },
  { name: 'head dim 320 forced onto flash', problem: () => describeShape({ headDim: 320 }), backends: ['flash'] },
  { name: 'needWeights', problem: () => describeShape({}, { needWeights: true }) },
  {
    name: 'decode shape (L 1, S 4096)',
    problem: () => describeShape({ queryHeads: 8, kvHeads: 2, queryLength: 1, keyLength: 4096, headDim: 64 }),
  },
  {
    name: 'decode shape (L 1, S 4096) on a hardware GPU (H100 calibration)',
    problem: () => describeShape({ queryHeads: 8, kvHeads: 2, queryLength: 1, keyLength: 4096, headDim: 64 }),
    target: onH100,
  },
  {
    name: 'prefill L 2048 on a hardware GPU (H100 calibration)',
    problem: () => describeShape({ batch: 4, queryHeads: 16, queryLength: 2048, keyLength: 2048, headDim: 64 }),
    target: onH100,
  },
  {
    name: 'dropout on efficient',
    problem: () => describeShape({ queryLength: 1, keyLength: 1024 }, { dropoutP: 0.1, dropoutSeed: 7 }),
    backends: ['efficient'],
  },
  {
    name: 'bool mask + causal',
    problem: () => {
      const device = cpuDevice();
      return describeShape({ queryLength: 8, keyLength: 8 }, { attnMask: zeros(device, [8, 8], { dtype: 'bool' }), isCausal: true });
    },
  },
  { name: 'window + softcap, bottom-right', problem: () => describeShape({}, { window: [4, 0], softcap: 30, causalAlignment: 'bottom-right', isCausal: true }) },
  { name: 'requiresGrad on a decode shape', problem: () => describeShape({ queryLength: 4, keyLength: 2048 }, { requiresGrad: true }) },
  { name: 'CPU tensors', problem: () => describeShape(), target: onCpu },
  { name: 'CPU tensors forced onto flash', problem: () => describeShape(), target: onCpu, backends: ['flash'] },
];

describe('explainSdpa table', () => {
  for (const row of table) {
    it(row.name, () => {
      const explanation = explainSdpaProblem(row.problem(), row.target ?? GPU_TARGET, row.backends ? { backends: row.backends } : {});
      expect({
        chosen: explanation.chosen,
        reason: explanation.reason.replace(/[\d.]+ (µs|ms)/g, 'N $1'),
        summary: explanation.summary,
        calibration: explanation.calibration,
        backends: explanation.backends.map((item) => ({ name: item.name, eligible: item.eligible, rejections: item.rejections.map((r) => r.message) })),
      }).toMatchSnapshot();
    });
  }

  it('explainSdpa on CPU tensors describes them (real tensors, nothing runs)', () => {
    const device = cpuDevice();
    const q = zeros(device, [1, 2, 3, 8]);
    const explanation = explainSdpa(q, q, q, { isCausal: true });
    expect(explanation.chosen).toBe('cpu');
    expect(explanation.summary).toBe('B1 Hq2 Hkv2 L3 S3 D8/8 f32 cpu causal(top-left)');
  });
});
