/**
 * Development probe for the GPU machine: can several subgroups of one workgroup each own subgroup matrices at
 * their own offsets (the uniformity diagnostic `chromium.subgroup_matrix_uniformity` turned off), is the result
 * right, and how fast is an f16→f32 matmul C = A·B built that way? One configuration per process (dawn.node
 * crashes now and then on that machine):  node probe.mjs <variant> [size]
 * Variants: diag (which diagnostic names compile), or `G:SGR:SGC:TM:TN:KS[:zero]` — G = 'global' (matrices loaded
 * from storage) or 'shared' (A and B tiles staged in workgroup memory), SGR × SGC subgroups per workgroup, each
 * owning TM × TN result blocks of 16×16, K step KS; ':zero' adds an opaque zero to every matrix offset.
 */
import { createDevice, toHalfBits } from '@webattn/tensor';

const device = await createDevice({ requireGpu: true });
const gpu = device.gpu;
const variant = process.argv[2] ?? 'diag';
const size = Number(process.argv[3] ?? 4096);
const header = `enable f16;
enable subgroups;
enable chromium_experimental_subgroup_matrix;
`;

async function compiles(code: string): Promise<string | undefined> {
  gpu.pushErrorScope('validation');
  const module = gpu.createShaderModule({ code });
  gpu.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' } });
  const error = await gpu.popErrorScope();
  return error ? error.message.split('\n').slice(0, 4).join(' | ') : undefined;
}

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
    console.log(JSON.stringify({ rule, error: (await compiles(code)) ?? null }));
  }
} else {
  const [where, sgr, sgc, tm, tn, ks, zero] = variant.split(':');
  const SGR = Number(sgr), SGC = Number(sgc), TM = Number(tm), TN = Number(tn), KS = Number(ks);
  const BM = SGR * TM * 16, BN = SGC * TN * 16, threads = SGR * SGC * 32;
  const z = zero === 'zero' ? ' + params.zero' : '';
  const M = size, N = size, K = size;
  const shared = where === 'shared';
  // Workgroup tiles: A as BM × KS (row stride KS + 8), B as KS × BN (row stride BN + 8) to spread banks.
  const AS = KS + 8, BS = BN + 8;
  const stage = shared
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
      ? `subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, row_major>(&wb, (${kk}) * ${BS}u + sc * ${TN * 16}u + ${j * 16}u${z}, ${BS}u)`
      : `subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, row_major>(&b, (k0 + ${kk}) * params.n + col0 + sc * ${TN * 16}u + ${j * 16}u${z}, params.n)`;
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
      accs.push(`var c${i}_${j} = subgroup_matrix_result<f32, 16, 16>();`);
      stores.push(`subgroupMatrixStore<row_major>(&out, (row0 + sr * ${TM * 16}u + ${i * 16}u) * params.n + col0 + sc * ${TN * 16}u + ${j * 16}u${z}, c${i}_${j}, params.n);`);
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
  for (var k0 = 0u; k0 < params.k; k0 += ${KS}u) {
    ${stage}
    ${lines.join('\n    ')}
    ${shared ? 'workgroupBarrier();' : ''}
  }
  ${stores.join('\n  ')}
}`;
  const error = await compiles(code);
  if (error) {
    console.log(JSON.stringify({ variant, error }));
  } else {
    const seed = (i: number) => (((i * 2654435761) >>> 0) % 2001) / 1000 - 1;
    const av = Float32Array.from({ length: M * K }, (_, i) => seed(i));
    const bv = Float32Array.from({ length: K * N }, (_, i) => seed(i + 77777));
    const half = (x: Float32Array) => Uint16Array.from(x, (v) => toHalfBits(v));
    const upload = (data: Uint16Array) => {
      const buf = gpu.createBuffer({ size: data.byteLength, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST });
      gpu.queue.writeBuffer(buf, 0, data);
      return buf;
    };
    const ah = half(av), bh = half(bv);
    const aBuf = upload(ah), bBuf = upload(bh);
    const outBuf = gpu.createBuffer({ size: M * N * 4, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST });
    const paramBuf = gpu.createBuffer({ size: 16, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
    gpu.queue.writeBuffer(paramBuf, 0, new Uint32Array([M, N, K, 0]));
    const module = gpu.createShaderModule({ code });
    const pipeline = gpu.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' } });
    const bind = gpu.createBindGroup({
      layout: pipeline.getBindGroupLayout(0),
      entries: [aBuf, bBuf, aBuf, bBuf, outBuf, paramBuf].map((buffer, binding) => ({ binding, resource: { buffer } })),
    });
    const runs = async (count: number) => {
      const encoder = gpu.createCommandEncoder();
      for (let r = 0; r < count; r++) {
        const pass = encoder.beginComputePass();
        pass.setPipeline(pipeline);
        pass.setBindGroup(0, bind);
        pass.dispatchWorkgroups(N / BN, M / BM);
        pass.end();
      }
      const start = performance.now();
      gpu.queue.submit([encoder.finish()]);
      await gpu.queue.onSubmittedWorkDone();
      return performance.now() - start;
    };
    // Poison, run once, check sampled entries against a CPU product of the f16-rounded inputs.
    const poison = new Float32Array(M * N).fill(Number.NaN);
    gpu.queue.writeBuffer(outBuf, 0, poison);
    await runs(1);
    const read = gpu.createBuffer({ size: M * N * 4, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    const encoder = gpu.createCommandEncoder();
    encoder.copyBufferToBuffer(outBuf, 0, read, 0, M * N * 4);
    gpu.queue.submit([encoder.finish()]);
    await read.mapAsync(GPUMapMode.READ);
    const got = new Float32Array(read.getMappedRange().slice(0));
    read.unmap();
    const ar = new Float32Array(new Uint16Array(ah).length), br = new Float32Array(bh.length);
    const fromHalf = (h: number) => {
      const e = (h >> 10) & 31, m = h & 1023, s = h & 0x8000 ? -1 : 1;
      return e === 0 ? s * m * 2 ** -24 : s * (1 + m / 1024) * 2 ** (e - 15);
    };
    ah.forEach((h, i) => (ar[i] = fromHalf(h)));
    bh.forEach((h, i) => (br[i] = fromHalf(h)));
    let worst = 0, nan = 0;
    for (let s = 0; s < 512; s++) {
      const r = (s * 7919) % M, c = (s * 104729 + (s >> 3)) % N;
      let want = 0;
      for (let k = 0; k < K; k++) want += ar[r * K + k]! * br[k * N + c]!;
      const g = got[r * N + c]!;
      if (!Number.isFinite(g)) nan++;
      worst = Math.max(worst, Math.abs(g - want) / (1 + Math.abs(want)));
    }
    await runs(3);
    const reps = 10;
    const ms = Math.min(await runs(reps), await runs(reps), await runs(reps)) / reps;
    console.log(JSON.stringify({ variant, size, worstRelError: worst, nonFinite: nan, ms, tflops: (2 * M * N * K) / ms / 1e9 }));
  }
}
device.destroy();
