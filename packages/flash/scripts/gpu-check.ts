/**
 * Flash on a real GPU (the H100/H200 machine): the conformance suite forward + backward against the float64
 * reference, the split-KV decode path, and rough timings. Bundle with
 *   node tools/bench/scripts/bundle.mjs packages/flash/scripts/gpu-check.ts .gpu/flash-check.mjs
 * and run there: bash .gpu/remote.sh node .gpu/flash-check.mjs $OUT/flash-check.json
 * WEBATTN_CHECK_ONLY=<text> runs only the cases whose name contains it; WEBATTN_CHECK_TIMINGS=0 skips the timings;
 * WEBATTN_CHECK_MATRIX=1 makes every f16 forward the subgroup-matrix kernel (as a tuned choice; its default is
 * head dims up to 16 only), cycling through its shapes; WEBATTN_CHECK_TILED=1 likewise the tiled kernel (the f16
 * path of devices without subgroup matrices); WEBATTN_CHECK_MATRIX_BACKWARD=1 makes every f16 backward after the
 * direct matrix forward take other matrix dQ and dK/dV shapes (as tuned choices), cycling through those that fit.
 */
import { writeFileSync } from 'node:fs';
import { createDevice, tensor, type Tensor } from '@webattn/tensor';
import { attentionCases, caseExpectation, caseTensors, compareCaseQuantity, inHalfPrecision, type AttentionQuantity } from '@webattn/reference/testing';
import { randomValues } from '@webattn/tensor/testing';
import { flashAttention, flashAttentionGrad, splitKvAttention } from '../src/index';
import { forwardCandidates, matrixBackwardCandidates } from '../src/flash-tuning';
import { HEAD_DIM_BUCKETS, forwardTuningKey, tunedBackwardShapesOf, tunedForwardTilesOf } from '../src/flash-tiles';

const device = await createDevice({ requireGpu: true });
const reportFile = process.argv[2] ?? 'flash-check.json';
const report: Record<string, unknown> = { adapter: device.info.adapter, storage: device.caps.maxComputeWorkgroupStorageSize };
console.log('device', device.info.adapter, 'f16', device.caps.shaderF16);
const conformance: unknown[] = [];
// Every case as written, and every f32 case again in f16 (the f16 kernels see every feature, not only the two
// f16 cases of the suite).
const cases = attentionCases.flatMap((kase) => (kase.dtype === 'f32' ? [kase, inHalfPrecision(kase)] : [kase]));
const only = process.env.WEBATTN_CHECK_ONLY;
const forced = process.env.WEBATTN_CHECK_MATRIX === '1' ? 'matrix' : process.env.WEBATTN_CHECK_TILED === '1' ? 'tiled' : null;
const forcedShapes = (headDimQk: number, headDimV: number) =>
  forwardCandidates(device, Math.max(headDimQk, headDimV), 'f16').filter((tiles) => tiles.kernel === forced);
const matrixBackward = process.env.WEBATTN_CHECK_MATRIX_BACKWARD === '1';
let caseIndex = 0;
let backwardIndex = 0;
for (const kase of cases) {
  if (only && !kase.name.includes(only)) continue;
  if (matrixBackward) {
    backwardIndex++;
    for (const qk of HEAD_DIM_BUCKETS) {
      for (const v of HEAD_DIM_BUCKETS) {
        const { query, keyValue } = matrixBackwardCandidates(device, Math.max(qk, v));
        if (query.length === 0 || keyValue.length === 0) continue;
        // dK/dV steps through its shapes at another pace than dQ, so that the pairs vary.
        const shapes = { matrixQuery: query[backwardIndex % query.length]!, matrixKeyValue: keyValue[(backwardIndex * 2 + 1) % keyValue.length]! };
        tunedBackwardShapesOf(device.gpu).set(forwardTuningKey('f16', qk, v), shapes);
      }
    }
  }
  if (forced) {
    caseIndex++;
    for (const qk of HEAD_DIM_BUCKETS) {
      for (const v of HEAD_DIM_BUCKETS) {
        const shapes = forcedShapes(qk, v);
        if (shapes.length > 0) tunedForwardTilesOf(device.gpu).set(forwardTuningKey('f16', qk, v), shapes[caseIndex % shapes.length]!);
      }
    }
  }
  const seed = 1234;
  const generated = kase.generate(seed);
  const { needWeights: _w, ...options } = generated.options;
  const inputs = { ...generated, options };
  const t = caseTensors(device, inputs);
  const expected = caseExpectation(kase, inputs);
  const results: Record<string, { error: number; tolerance: number; pass: boolean }> = {};
  const check = (name: AttentionQuantity, actual: ArrayLike<number>, oracle: ArrayLike<number>, same: ArrayLike<number>) => {
    const c = compareCaseQuantity(kase, name, actual, oracle, same);
    results[name] = { error: c.error, tolerance: c.tolerance, pass: c.pass };
  };
  try {
    const forward = flashAttention(t.q, t.k, t.v, t.options);
    check('out', await forward.out.toArray(), expected.oracle.out, expected.samePrecision.out);
    check('logsumexp', await forward.logsumexp.toArray(), expected.oracle.logsumexp, expected.samePrecision.logsumexp);
    if (kase.backward) {
      const g = flashAttentionGrad(t.q, t.k, t.v, forward.out, forward.logsumexp, t.gradOut, t.options);
      check('dq', await g.dq.toArray(), expected.oracleGradients!.dq, expected.samePrecisionGradients!.dq);
      check('dk', await g.dk.toArray(), expected.oracleGradients!.dk, expected.samePrecisionGradients!.dk);
      check('dv', await g.dv.toArray(), expected.oracleGradients!.dv, expected.samePrecisionGradients!.dv);
      for (const x of [g.dq, g.dk, g.dv]) x.dispose();
    }
    forward.out.dispose();
    forward.logsumexp.dispose();
  } catch (error) {
    results.error = { error: Number.NaN, tolerance: 0, pass: false };
    console.log('ERROR', kase.name, String(error).slice(0, 2000));
  }
  const pass = Object.values(results).every((r) => r.pass);
  const tunedBackward = matrixBackward && kase.dtype === 'f16' ? tunedBackwardShapesOf(device.gpu).get(forwardTuningKey('f16', t.q.shape.at(-1)!, t.v.shape.at(-1)!)) : undefined;
  const shapes = tunedBackward ? ` [matrix dQ ${JSON.stringify(tunedBackward.matrixQuery)}, dK/dV ${JSON.stringify(tunedBackward.matrixKeyValue)}]` : '';
  console.log(pass ? 'PASS' : 'FAIL', kase.name + shapes, pass ? '' : JSON.stringify(results));
  conformance.push({ name: kase.name, pass, results });
  t.dispose();
}
report.conformance = conformance;
writeFileSync(reportFile, JSON.stringify(report, null, 2));
console.log(`conformance: ${conformance.filter((c) => (c as { pass: boolean }).pass).length} of ${conformance.length} passed`);
if (process.env.WEBATTN_CHECK_TIMINGS === '0') {
  device.destroy();
  process.exit(0);
}

async function time(run: () => Tensor[], iterations = 3): Promise<number> {
  for (const x of run()) x.dispose();
  await device.sync();
  const start = performance.now();
  for (let i = 0; i < iterations; i++) for (const x of run()) x.dispose();
  await device.sync();
  return (performance.now() - start) / iterations;
}

const timings: unknown[] = [];
for (const [B, H, N, D, dtype, causal] of [
  [4, 16, 4096, 64, 'f32', false],
  [4, 16, 4096, 64, 'f16', false],
  [4, 16, 4096, 128, 'f16', true],
] as const) {
  const make = (seed: number) => tensor(device, randomValues(B * H * N * D, seed), [B, H, N, D], { dtype });
  const [q, k, v, gradOut] = [make(1), make(2), make(3), make(4)];
  const options = { isCausal: causal };
  const forwardMs = await time(() => {
    const r = flashAttention(q, k, v, options);
    return [r.out, r.logsumexp];
  });
  const { out, logsumexp } = flashAttention(q, k, v, options);
  const backwardMs = await time(() => {
    const g = flashAttentionGrad(q, k, v, out, logsumexp, gradOut, options);
    return [g.dq, g.dk, g.dv];
  }, 2);
  const flops = 4 * B * H * N * N * D * (causal ? 0.5 : 1);
  const entry = { B, H, N, D, dtype, causal, forwardMs, backwardMs, forwardTflops: flops / forwardMs / 1e9, backwardTflops: (2.5 * flops) / backwardMs / 1e9 };
  console.log(JSON.stringify(entry));
  timings.push(entry);
  for (const x of [q, k, v, gradOut, out, logsumexp]) x.dispose();
}
{
  const [B, H, S, D] = [1, 32, 8192, 128];
  const q = tensor(device, randomValues(B * H * D, 5), [B, H, 1, D], { dtype: 'f16' });
  const k = tensor(device, randomValues(B * H * S * D, 6), [B, H, S, D], { dtype: 'f16' });
  const v = tensor(device, randomValues(B * H * S * D, 7), [B, H, S, D], { dtype: 'f16' });
  const splitMs = await time(() => Object.values(splitKvAttention(q, k, v)));
  const flashMs = await time(() => Object.values(flashAttention(q, k, v)));
  const entry = { decode: `B${B} H${H} L1 S${S} D${D} f16`, splitMs, flashMs };
  console.log(JSON.stringify(entry));
  timings.push(entry);
}
report.timings = timings;
writeFileSync(reportFile, JSON.stringify(report, null, 2));
device.destroy();
