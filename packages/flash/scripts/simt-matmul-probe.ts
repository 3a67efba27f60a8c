/**
 * Development probe for the GPU machine: how fast can plain WGSL (f32 FMAs, no tensor cores) multiply matrices on
 * this device? The ceiling the f32 flash kernels work under (their two products per key tile are small matmuls
 * of this shape). C = A·B, all f32, row-major, size × size; each workgroup computes a BM × BN block of C with
 * (BM / TM) × (BN / TN) threads, each owning a TM × TN register block (rows ty + i · BM/TM, vec4 columns
 * tx + j · BN/(4·TN)... so that neighbouring threads read neighbouring words), A (transposed) and B staged per
 * BK-deep step in workgroup memory.  node probe.mjs BM:BN:TM:TN:BK [size]
 */
import { createDevice } from '@webattn/tensor';
import { checkAndTimeMatmul, compileProbe, probeValues } from './matmul-probe-harness';

const device = await createDevice({ requireGpu: true });
const gpu = device.gpu;
const [BM, BN, TM, TN, BK] = (process.argv[2] ?? '128:128:8:8:8').split(':').map(Number) as [number, number, number, number, number];
const size = Number(process.argv[3] ?? 4096);
const threadsN = BN / TN;
const threadsM = BM / TM;
const threads = threadsM * threadsN;
const [M4, N4, TN4] = [BM / 4, BN / 4, TN / 4];

const code = `struct Params { m: u32, n: u32, k: u32, zero: u32 }
@group(0) @binding(0) var<storage, read> a: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> b: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> c: array<vec4<f32>>;
@group(0) @binding(3) var<uniform> params: Params;
// at[k · ${M4} + m4]: rows 4·m4 .. 4·m4 + 3 of A's column k; bt[k · ${N4} + n4]: columns 4·n4 .. of B's row k.
var<workgroup> at: array<vec4<f32>, ${BK * M4}>;
var<workgroup> bt: array<vec4<f32>, ${BK * N4}>;
@compute @workgroup_size(${threads})
fn main(@builtin(local_invocation_index) lid: u32, @builtin(workgroup_id) wid: vec3<u32>) {
  let tx = lid % ${threadsN}u;
  let ty = lid / ${threadsN}u;
  let row0 = wid.y * ${BM}u;
  let col0 = wid.x * ${BN}u;
  let k4 = params.k / 4u;
  let n4 = params.n / 4u;
  // acc[i · TN4 + j]: row ty · TM + i, vec4 column tx + j · threadsN.
  var acc: array<vec4<f32>, ${TM * TN4}>;
  for (var e = 0u; e < ${TM * TN4}u; e++) { acc[e] = vec4<f32>(0.0); }
  for (var k0 = 0u; k0 < params.k; k0 += ${BK}u) {
    workgroupBarrier();
    for (var e = lid; e < ${(BM * BK) / 4}u; e += ${threads}u) {
      let r = e / ${BK / 4}u;
      let kq = e % ${BK / 4}u;
      let value = a[(row0 + r) * k4 + k0 / 4u + kq];
      for (var t = 0u; t < 4u; t++) { at[(kq * 4u + t) * ${M4}u + r / 4u][r % 4u] = value[t]; }
    }
    for (var e = lid; e < ${(BK * BN) / 4}u; e += ${threads}u) {
      let r = e / ${N4}u;
      bt[e] = b[(k0 + r) * n4 + col0 / 4u + e % ${N4}u];
    }
    workgroupBarrier();
    for (var kk = 0u; kk < ${BK}u; kk++) {
      var av: array<vec4<f32>, ${TM / 4}>;
      for (var i = 0u; i < ${TM / 4}u; i++) { av[i] = at[kk * ${M4}u + ty * ${TM / 4}u + i]; }
      var bv: array<vec4<f32>, ${TN4}>;
      for (var j = 0u; j < ${TN4}u; j++) { bv[j] = bt[kk * ${N4}u + tx + j * ${threadsN}u]; }
      for (var i = 0u; i < ${TM}u; i++) {
        let x = av[i / 4u][i % 4u];
        for (var j = 0u; j < ${TN4}u; j++) { acc[i * ${TN4}u + j] += x * bv[j]; }
      }
    }
  }
  for (var i = 0u; i < ${TM}u; i++) {
    for (var j = 0u; j < ${TN4}u; j++) {
      c[(row0 + ty * ${TM}u + i) * n4 + col0 / 4u + tx + j * ${threadsN}u] = acc[i * ${TN4}u + j];
    }
  }
}`;

const compiled = await compileProbe(gpu, code);
if (typeof compiled === 'string') {
  console.log(JSON.stringify({ variant: process.argv[2], error: compiled }));
} else {
  const [a, b] = [probeValues(size * size, 0), probeValues(size * size, 77777)];
  const upload = (data: Float32Array<ArrayBuffer>) => {
    const buffer = gpu.createBuffer({ size: data.byteLength, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST });
    gpu.queue.writeBuffer(buffer, 0, data);
    return buffer;
  };
  const out = gpu.createBuffer({ size: size * size * 4, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST });
  const params = gpu.createBuffer({ size: 16, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
  gpu.queue.writeBuffer(params, 0, new Uint32Array([size, size, size, 0]));
  const bindGroup = gpu.createBindGroup({
    layout: compiled.getBindGroupLayout(0),
    entries: [upload(a), upload(b), out, params].map((buffer, binding) => ({ binding, resource: { buffer } })),
  });
  await checkAndTimeMatmul({ gpu, variant: process.argv[2] ?? '', size, pipeline: compiled, bindGroup, workgroups: [size / BN, size / BM], out, a, b });
}
device.destroy();
