/**
 * Development probe for the GPU machine: can several subgroups of one workgroup each own subgroup matrices at
 * their own offsets (the uniformity diagnostic `chromium.subgroup_matrix_uniformity` turned off), is the result
 * right, and how fast is an f16→f32 matmul C = A·B built that way? One configuration per process (dawn.node
 * crashes now and then on that machine):  node probe.mjs <variant> [size] [no-robustness]
 * Variants: diag (which diagnostic names compile), or `G:SGR:SGC:TM:TN:KS[:zero][:n8]` — G = 'global' (matrices loaded
 * from storage), 'shared' (A and B tiles staged in workgroup memory) or 'prefetch' (staged, with the next K step's
 * tiles read into registers while this step's products run), SGR × SGC subgroups per workgroup, each
 * owning TM × TN result blocks of 16×16 (16 rows × 8 columns with ':n8', the 16×8×16 configuration), K step KS;
 * ':zero' adds an opaque zero to every matrix offset.
 */
import { createDevice, DEFAULT_DAWN_FEATURES, fromHalfBits, toHalfBits } from '@webattn/tensor';
import { checkAndTimeMatmul, compileProbe, probeValues } from './matmul-probe-harness';

const noRobustness = process.argv[4] === 'no-robustness';
const device = await createDevice({
  requireGpu: true,
  ...(noRobustness ? { dawnFeatures: [...DEFAULT_DAWN_FEATURES, 'disable_robustness'] } : {}),
});
const gpu = device.gpu;
const variant = process.argv[2] ?? 'diag';
const size = Number(process.argv[3] ?? 4096);
const header = `enable f16;
enable subgroups;
enable chromium_experimental_subgroup_matrix;
`;

if (variant === 'diag') {
  for (const rule of ['chromium.subgroup_matrix_uniformity', 'subgroup_uniformity', 'chromium.subgroup_uniformity']) {
    const code = `${header}diagnostic(off, ${rule});
@group(0) @binding(0) var<storage, read_write> out: array<f32>;
var<workgroup> w: array<f16, 4096>;
@compute @workgroup_size(128)
fn main(@builtin(local_invocation_index) lid: u32) {
  let sg = lid / 32u;
  let l = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, row_major>(&w, sg * 256u, 16u);
  let r = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, row_major>(&w, sg * 256u, 16u);
  let c = subgroupMatrixMultiplyAccumulate(l, r, subgroup_matrix_result<f32, 16, 16>());
  subgroupMatrixStore<row_major>(&out, sg * 256u, c, 16u);
}`;
    const compiled = await compileProbe(gpu, code);
    console.log(JSON.stringify({ rule, error: typeof compiled === 'string' ? compiled : null }));
  }
} else {
  const [where, sgr, sgc, tm, tn, ks, ...flags] = variant.split(':');
  // Result block width: 16, or 8 for the 16×8×16 configuration (left 16×16, right 16 × 8, result 16 × 8).
  const NB = flags.includes('n8') ? 8 : 16;
  const SGR = Number(sgr), SGC = Number(sgc), TM = Number(tm), TN = Number(tn), KS = Number(ks);
  const BM = SGR * TM * 16, BN = SGC * TN * NB, threads = SGR * SGC * 32;
  const z = flags.includes('zero') ? ' + params.zero' : '';
  const M = size, N = size, K = size;
  const prefetch = where === 'prefetch';
  const shared = where === 'shared' || prefetch;
  // Workgroup tiles: A as BM × KS (row stride KS + 8), B as KS × BN (row stride BN + 8) to spread banks.
  const AS = KS + 8, BS = BN + 8;
  // prefetch: each thread reads the same vec4s of A and B every K step (aReads, bReads of them) into registers.
  const aReads = (BM * KS) / 4 / threads, bReads = (KS * BN) / 4 / threads;
  if (prefetch && (!Number.isInteger(aReads) || !Number.isInteger(bReads))) throw new Error(`prefetch needs whole vec4 reads per thread: ${aReads}, ${bReads}`);
  const aSpot = (t: number) => `let ar${t} = (lid + ${t * threads}u) / ${KS / 4}u; let ac${t} = ((lid + ${t * threads}u) % ${KS / 4}u) * 4u;`;
  const bSpot = (t: number) => `let br${t} = (lid + ${t * threads}u) / ${BN / 4}u; let bc${t} = ((lid + ${t * threads}u) % ${BN / 4}u) * 4u;`;
  const fetch = (kBase: string) =>
    [
      ...Array.from({ length: aReads }, (_, t) => `pa${t} = a4[((row0 + ar${t}) * params.k + ${kBase} + ac${t}) / 4u];`),
      ...Array.from({ length: bReads }, (_, t) => `pb${t} = b4[((${kBase} + br${t}) * params.n + col0 + bc${t}) / 4u];`),
    ].join('\n    ');
  const spread = (array: string, at: string, value: string) =>
    [0, 1, 2, 3].map((e) => `${array}[${at} + ${e}u] = ${value}.${'xyzw'[e]};`).join(' ');
  const prefetchSetup = prefetch
    ? [
        ...Array.from({ length: aReads }, (_, t) => `${aSpot(t)} var pa${t}: vec4<f16>;`),
        ...Array.from({ length: bReads }, (_, t) => `${bSpot(t)} var pb${t}: vec4<f16>;`),
        fetch('0u'),
      ].join('\n  ')
    : '';
  const prefetchStage = prefetch
    ? [
        ...Array.from({ length: aReads }, (_, t) => spread('wa', `ar${t} * ${AS}u + ac${t}`, `pa${t}`)),
        ...Array.from({ length: bReads }, (_, t) => spread('wb', `br${t} * ${BS}u + bc${t}`, `pb${t}`)),
        'workgroupBarrier();',
        `if (k0 + ${KS}u < params.k) {\n    ${fetch(`k0 + ${KS}u`)}\n    }`,
      ].join('\n    ')
    : '';
  const stage = prefetch
    ? prefetchStage
    : shared
    ? `for (var e = lid; e < ${(BM * KS) / 4}u; e += ${threads}u) {
      let r = e / ${KS / 4}u; let c = (e % ${KS / 4}u) * 4u;
      let v = a4[((row0 + r) * params.k + k0 + c) / 4u];
      wa[r * ${AS}u + c] = v.x; wa[r * ${AS}u + c + 1u] = v.y; wa[r * ${AS}u + c + 2u] = v.z; wa[r * ${AS}u + c + 3u] = v.w;
    }
    for (var e = lid; e < ${(KS * BN) / 4}u; e += ${threads}u) {
      let r = e / ${BN / 4}u; let c = (e % ${BN / 4}u) * 4u;
      let v = b4[((k0 + r) * params.n + col0 + c) / 4u];
      wb[r * ${BS}u + c] = v.x; wb[r * ${BS}u + c + 1u] = v.y; wb[r * ${BS}u + c + 2u] = v.z; wb[r * ${BS}u + c + 3u] = v.w;
    }
    workgroupBarrier();`
    : '';
  const loadA = (i: number, kk: string) =>
    shared
      ? `subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, row_major>(&wa, (sr * ${TM * 16}u + ${i * 16}u) * ${AS}u + ${kk}${z}, ${AS}u)`
      : `subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, row_major>(&a, (row0 + sr * ${TM * 16}u + ${i * 16}u) * params.k + k0 + ${kk}${z}, params.k)`;
  const loadB = (j: number, kk: string) =>
    shared
      ? `subgroupMatrixLoad<subgroup_matrix_right<f16, ${NB}, 16>, row_major>(&wb, (${kk}) * ${BS}u + sc * ${TN * NB}u + ${j * NB}u${z}, ${BS}u)`
      : `subgroupMatrixLoad<subgroup_matrix_right<f16, ${NB}, 16>, row_major>(&b, (k0 + ${kk}) * params.n + col0 + sc * ${TN * NB}u + ${j * NB}u${z}, params.n)`;
  const lines: string[] = [];
  for (let kb = 0; kb < KS / 16; kb++) {
    const kk = `${kb * 16}u`;
    for (let i = 0; i < TM; i++) lines.push(`let a${i}_${kb} = ${loadA(i, kk)};`);
    for (let j = 0; j < TN; j++) lines.push(`let b${j}_${kb} = ${loadB(j, kk)};`);
    for (let i = 0; i < TM; i++) for (let j = 0; j < TN; j++) lines.push(`c${i}_${j} = subgroupMatrixMultiplyAccumulate(a${i}_${kb}, b${j}_${kb}, c${i}_${j});`);
  }
  const accs: string[] = [];
  const stores: string[] = [];
  for (let i = 0; i < TM; i++)
    for (let j = 0; j < TN; j++) {
      accs.push(`var c${i}_${j} = subgroup_matrix_result<f32, ${NB}, 16>();`);
      stores.push(`subgroupMatrixStore<row_major>(&out, (row0 + sr * ${TM * 16}u + ${i * 16}u) * params.n + col0 + sc * ${TN * NB}u + ${j * NB}u${z}, c${i}_${j}, params.n);`);
    }
  const code = `${header}diagnostic(off, chromium.subgroup_matrix_uniformity);
struct Params { m: u32, n: u32, k: u32, zero: u32 }
@group(0) @binding(0) var<storage, read> a: array<f16>;
@group(0) @binding(1) var<storage, read> b: array<f16>;
@group(0) @binding(2) var<storage, read> a4: array<vec4<f16>>;
@group(0) @binding(3) var<storage, read> b4: array<vec4<f16>>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<uniform> params: Params;
${shared ? `var<workgroup> wa: array<f16, ${BM * AS}>;\nvar<workgroup> wb: array<f16, ${KS * BS}>;` : ''}
@compute @workgroup_size(${threads})
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
  let sg = lid / 32u;
  let sr = sg / ${SGC}u;
  let sc = sg % ${SGC}u;
  let row0 = wid.y * ${BM}u;
  let col0 = wid.x * ${BN}u;
  _ = a[0]; _ = b[0]; _ = a4[0]; _ = b4[0];
  ${accs.join('\n  ')}
  ${prefetchSetup}
  for (var k0 = 0u; k0 < params.k; k0 += ${KS}u) {
    ${stage}
    ${lines.join('\n    ')}
    ${shared ? 'workgroupBarrier();' : ''}
  }
  ${stores.join('\n  ')}
}`;
  if (process.env.PROBE_PRINT) console.log(code);
  const compiled = await compileProbe(gpu, code);
  if (typeof compiled === 'string') {
    console.log(JSON.stringify({ variant, error: compiled }));
  } else {
    // The kernel multiplies f16 inputs: check against the product of the f16-rounded values.
    const halves = (values: Float32Array) => Uint16Array.from(values, (value) => toHalfBits(value));
    const [ah, bh] = [halves(probeValues(M * K, 0)), halves(probeValues(K * N, 77777))];
    const upload = (data: Uint16Array<ArrayBuffer>) => {
      const buffer = gpu.createBuffer({ size: data.byteLength, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST });
      gpu.queue.writeBuffer(buffer, 0, data);
      return buffer;
    };
    const [aBuffer, bBuffer] = [upload(ah), upload(bh)];
    const out = gpu.createBuffer({ size: M * N * 4, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST });
    const params = gpu.createBuffer({ size: 16, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
    gpu.queue.writeBuffer(params, 0, new Uint32Array([M, N, K, 0]));
    const bindGroup = gpu.createBindGroup({
      layout: compiled.getBindGroupLayout(0),
      entries: [aBuffer, bBuffer, aBuffer, bBuffer, out, params].map((buffer, binding) => ({ binding, resource: { buffer } })),
    });
    const [a, b] = [Float32Array.from(ah, fromHalfBits), Float32Array.from(bh, fromHalfBits)];
    await checkAndTimeMatmul({ gpu, variant, size, pipeline: compiled, bindGroup, workgroups: [N / BN, M / BM], out, a, b });
  }
}
device.destroy();
