/**
 * The math backend on a real GPU (the H100/H200 machine): the conformance suite forward + backward against the
 * float64 oracle with the shared tolerance rule, plus rough timings. Bundle with
 *   node tools/bench/scripts/bundle.mjs packages/reference/scripts/gpu-check.ts .gpu/math-check.mjs
 * and run there: bash .gpu/remote.sh node .gpu/math-check.mjs $OUT/math-check.json
 */
import { writeFileSync } from 'node:fs';
import { createDevice, randn } from '@webattn/tensor';
import { attentionCases, caseExpectation, caseTensors, compareCaseQuantity, type AttentionQuantity } from '@webattn/reference/testing';
import { mathAttention, mathAttentionBackward } from '../src/index';

const device = await createDevice({ requireGpu: true });
console.log('device', device.info.adapter, 'f16', device.caps.shaderF16);
const conformance: unknown[] = [];
let failures = 0;
for (const kase of attentionCases) {
  const seed = Math.floor(Math.random() * 2 ** 31);
  const inputs = kase.generate(seed);
  const expected = caseExpectation(kase, inputs);
  const t = caseTensors(device, inputs);
  const results: Record<string, { error: number; tolerance: number; pass: boolean }> = {};
  const check = (name: AttentionQuantity, actual: ArrayLike<number>, oracle: ArrayLike<number>, same: ArrayLike<number>) => {
    const c = compareCaseQuantity(kase, name, actual, oracle, same);
    results[name] = { error: c.error, tolerance: c.tolerance, pass: c.pass };
  };
  const forward = mathAttention(t.q, t.k, t.v, t.options);
  check('out', await forward.out.toArray(), expected.oracle.out, expected.samePrecision.out);
  check('logsumexp', await forward.logsumexp.toArray(), expected.oracle.logsumexp, expected.samePrecision.logsumexp);
  if (forward.weights && expected.oracle.weights) {
    check('weights', await forward.weights.toArray(), expected.oracle.weights, expected.samePrecision.weights!);
  }
  if (kase.backward) {
    const g = mathAttentionBackward(t.q, t.k, t.v, forward.out, forward.logsumexp, t.gradOut, t.options);
    check('dq', await g.dq.toArray(), expected.oracleGradients!.dq, expected.samePrecisionGradients!.dq);
    check('dk', await g.dk.toArray(), expected.oracleGradients!.dk, expected.samePrecisionGradients!.dk);
    check('dv', await g.dv.toArray(), expected.oracleGradients!.dv, expected.samePrecisionGradients!.dv);
  }
  await device.sync();
  const pass = Object.values(results).every((r) => r.pass);
  if (!pass) failures++;
  console.log(pass ? 'PASS' : 'FAIL', kase.name, `seed ${seed}`, pass ? '' : JSON.stringify(results));
  conformance.push({ name: kase.name, seed, pass, results });
}
const timings: unknown[] = [];
for (const [batch, heads, length, dim] of [
  [1, 8, 1024, 64],
  [2, 16, 2048, 128],
] as const) {
  const q = randn(device, [batch, heads, length, dim]);
  const grad = randn(device, [batch, heads, length, dim]);
  const times: number[][] = [];
  for (let rep = 0; rep < 3; rep++) {
    let start = performance.now();
    const r = mathAttention(q, q, q, { isCausal: true });
    await device.sync();
    const forwardMs = performance.now() - start;
    start = performance.now();
    const g = mathAttentionBackward(q, q, q, r.out, r.logsumexp, grad, { isCausal: true });
    await device.sync();
    times.push([forwardMs, performance.now() - start]);
    for (const x of [r.out, r.logsumexp, g.dq, g.dk, g.dv]) x.dispose();
  }
  console.log('timing', [batch, heads, length, dim].join('x'), 'forward/backward ms', JSON.stringify(times));
  timings.push({ shape: [batch, heads, length, dim], forwardBackwardMs: times });
}
writeFileSync(process.argv[2] ?? 'math-check.json', JSON.stringify({ adapter: device.info.adapter, failures, conformance, timings }, null, 2));
device.destroy();
process.exit(failures === 0 ? 0 : 1);
