/**
 * The matrix backward's prologue (backward-prologue.wgsl): its four padded copies bit for bit against copies made
 * here (q's and k's NaN values as 0, v's and dO's specials kept, rows and dims past the source's zero) and delta
 * against float64 sums, on GQA with L ≠ S, heads-inner and offset layouts, head dims padded (40 → 64) and copies of
 * several blocks; the copies' buffer and delta start poisoned. Then when the backward takes it: dense f16 problems
 * on subgroup matrices record it in place of the delta kernel and the four copies; packed varlen and rows not of
 * eights keep them. (Its results inside the whole backward: matrix-stored-scores.test.ts.)
 */
import { gpu } from '../test/test-device';
import { fromHalfBits, type AttentionLayout, type AttentionProblem, type KernelSource } from '@webattn/tensor';
import { expectNoGpuErrors, freshSeed } from '@webattn/tensor/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backwardPrologueUnavailable, recordBackwardPrologue, type PrologueShape } from './backward-prologue';
import { recordFlashBackward } from './flash-backward';
import { paddedKeyRows } from './padded-key-values';
import { rawRecorder, type KernelRecorder } from './recorder';
import { emulateSubgroupMatrices } from './subgroup-matrix-emulation';
import { testProblem } from '../test/test-problem';
import { POISON, poisonHalves, readBack, sourceBits } from '../test/padded-copies';
import { poisoningRecorder } from '../test/poisoning-recorder';

afterAll(() => gpu?.destroy());

/** [B, H, S, D] and [B, S, H, D] layouts of `heads` × `length` rows of `dims`, from element `offset`. */
const bhsd = (heads: number, length: number, dims: number, offset = 0): AttentionLayout => ({ batch: heads * length * dims, head: length * dims, sequence: dims, dim: 1, offset });
const bshd = (heads: number, length: number, dims: number, offset = 0): AttentionLayout => ({ batch: heads * length * dims, head: dims, sequence: heads * dims, dim: 1, offset });

interface PrologueCase {
  readonly name: string;
  readonly problem: AttentionProblem;
  readonly gradOut: AttentionLayout;
  readonly shape: PrologueShape;
}

/** A problem's sizes, one head dim for q, k and v. */
type Sizes = Pick<AttentionProblem, 'batch' | 'queryHeads' | 'kvHeads' | 'queryLength' | 'keyLength'> & { readonly headDim: number };

/** An f16 problem with gradients, [B, H, S, D] tensors unless `layout` says otherwise. */
function f16Problem(sizes: Sizes, layout: Partial<AttentionProblem['layout']> = {}): AttentionProblem {
  const { batch, queryHeads, kvHeads, queryLength, keyLength, headDim } = sizes;
  const dense = { q: bhsd(queryHeads, queryLength, headDim), k: bhsd(kvHeads, keyLength, headDim), v: bhsd(kvHeads, keyLength, headDim), out: bhsd(queryHeads, queryLength, headDim) };
  return testProblem(
    { batch, queryHeads, kvHeads, queryLength, keyLength, headDimQk: headDim, headDimV: headDim, dtype: 'f16', scale: 1 / Math.sqrt(headDim), layout: { ...dense, ...layout } },
    { requiresGrad: true },
  );
}

function prologueCase(name: string, sizes: Sizes, shape: PrologueShape, offsets = 0): PrologueCase {
  const { queryHeads, kvHeads, queryLength, keyLength, headDim } = sizes;
  const problem = f16Problem(sizes, { q: bhsd(queryHeads, queryLength, headDim, offsets), k: bshd(kvHeads, keyLength, headDim), v: bhsd(kvHeads, keyLength, headDim, 2 * offsets) });
  return { name, problem, gradOut: bshd(queryHeads, queryLength, headDim, offsets), shape };
}

const CASES: readonly PrologueCase[] = [
  prologueCase('GQA 4/2, L37 S45 D16, q and v from offsets 8 and 16, k and dO heads-inner', { batch: 2, queryHeads: 4, kvHeads: 2, queryLength: 37, keyLength: 45, headDim: 16 }, { queryRows: 48, headDimQk: 16, headDimV: 16 }, 8),
  prologueCase('L70 S33 D40 padded to 64, 32-row tiles', { batch: 1, queryHeads: 2, kvHeads: 2, queryLength: 70, keyLength: 33, headDim: 40 }, { queryRows: 96, headDimQk: 64, headDimV: 64 }),
  prologueCase('several blocks a copy: L600 S700 D16', { batch: 1, queryHeads: 3, kvHeads: 1, queryLength: 600, keyLength: 700, headDim: 16 }, { queryRows: 608, headDimQk: 16, headDimV: 16 }),
];

/** The elements a layout reaches for [batch, heads, length, dims], rounded up to whole 16-byte chunks. */
const elementsOf = (layout: AttentionLayout, batch: number, heads: number, length: number, dims: number) =>
  Math.ceil((layout.offset + (batch - 1) * layout.batch + (heads - 1) * layout.head + (length - 1) * layout.sequence + dims) / 8) * 8;

/** The padded copy of `bits` the kernel should write (see padded-copy-kernel.test.ts for the single copies). */
function expectedCopy(bits: Uint16Array, layout: AttentionLayout, batch: number, heads: number, length: number, dims: number, rows: number, paddedDims: number, zeroNan: boolean): Uint16Array {
  const copy = new Uint16Array(batch * heads * rows * paddedDims);
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < heads; h++) {
      for (let i = 0; i < length; i++) {
        for (let d = 0; d < dims; d++) {
          const value = bits[layout.offset + b * layout.batch + h * layout.head + i * layout.sequence + d]!;
          copy[((b * heads + h) * rows + i) * paddedDims + d] = zeroNan && (value & 0x7fff) > 0x7c00 ? 0 : value;
        }
      }
    }
  }
  return copy;
}

function upload(device: GPUDevice, data: Uint16Array | Float32Array): GPUBuffer {
  const buffer = device.createBuffer({ size: Math.max(16, Math.ceil(data.byteLength / 16) * 16), usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST });
  device.queue.writeBuffer(buffer, 0, data.buffer, data.byteOffset, Math.ceil(data.byteLength / 4) * 4);
  return buffer;
}

describe.skipIf(!gpu)('the backward prologue (backward-prologue.wgsl)', () => {
  it.each(CASES.map((kase) => [kase.name, kase] as const))('%s: four copies bit for bit, delta within f32 rounding of float64', async (_name, kase) => {
    const device = gpu!.gpu;
    const seed = freshSeed();
    const { problem, shape } = kase;
    const { batch, queryHeads: hq, kvHeads: hkv, queryLength: L, keyLength: S, headDimQk: D } = problem;
    const { layout } = problem;
    const spans = {
      q: elementsOf(layout.q, batch, hq, L, D),
      k: elementsOf(layout.k, batch, hkv, S, D),
      v: elementsOf(layout.v, batch, hkv, S, D),
      gradOut: elementsOf(kase.gradOut, batch, hq, L, D),
      out: elementsOf(layout.out, batch, hq, L, D),
    };
    // Specials (NaN payloads, ±∞, −0, subnormals) in every source: dO's and O's reach delta.
    const bits = {
      q: sourceBits(spans.q, seed),
      k: sourceBits(spans.k, seed + 10),
      v: sourceBits(spans.v, seed + 20),
      gradOut: sourceBits(spans.gradOut, seed + 30),
      out: sourceBits(spans.out, seed + 40),
    };
    const sources = {
      q: upload(device, bits.q),
      k: upload(device, bits.k),
      v: upload(device, bits.v),
      gradOut: upload(device, bits.gradOut),
      out: upload(device, bits.out),
      gradOutLayout: kase.gradOut,
    };
    expect(backwardPrologueUnavailable(problem, sources, shape, 2 ** 30)).toBeNull();
    const deltaPoison = new Float32Array(batch * hq * L).fill(-12345.5);
    const delta = upload(device, deltaPoison);
    const encoder = device.createCommandEncoder();
    const recorder = poisoningRecorder(device, encoder, poisonHalves);
    const copies = await expectNoGpuErrors(gpu!, () => recordBackwardPrologue(recorder, problem, sources, shape, delta));
    device.queue.submit([encoder.finish()]);
    const context = `seed ${seed}`;

    const keyRows = paddedKeyRows(S, 64);
    const expected = {
      q: expectedCopy(bits.q, layout.q, batch, hq, L, D, shape.queryRows, shape.headDimQk, true),
      k: expectedCopy(bits.k, layout.k, batch, hkv, S, D, keyRows, shape.headDimQk, true),
      v: expectedCopy(bits.v, layout.v, batch, hkv, S, D, keyRows, shape.headDimV, false),
      gradOut: expectedCopy(bits.gradOut, kase.gradOut, batch, hq, L, D, shape.queryRows, shape.headDimV, false),
    };
    const bound = { q: copies.q, k: { buffer: copies.keyValues.k }, v: { buffer: copies.keyValues.v }, gradOut: copies.gradOut };
    for (const name of ['q', 'k', 'v', 'gradOut'] as const) {
      const range = bound[name].buffer as GPUBufferBinding;
      const whole = new Uint16Array(await readBack(device, range.buffer, range.offset! + expected[name].byteLength));
      const copy = whole.subarray(range.offset! / 2);
      const mismatch = copy.findIndex((value, i) => value !== expected[name][i]);
      expect(mismatch, `${context}: ${name}: element ${mismatch}: ${copy[mismatch]} vs ${expected[name][mismatch]} (poison ${POISON})`).toBe(-1);
    }
    expect(copies.keyValues.problem.layout.k).toEqual({ batch: hkv * keyRows * shape.headDimQk, head: keyRows * shape.headDimQk, sequence: shape.headDimQk, dim: 1, offset: 0 });

    const deltas = new Float32Array(await readBack(device, delta, deltaPoison.byteLength));
    for (let b = 0; b < batch; b++) {
      for (let h = 0; h < hq; h++) {
        for (let i = 0; i < L; i++) {
          let exact = 0;
          let magnitude = 0;
          for (let d = 0; d < D; d++) {
            const o = fromHalfBits(bits.out[layout.out.offset + b * layout.out.batch + h * layout.out.head + i * layout.out.sequence + d]!);
            const g = fromHalfBits(bits.gradOut[kase.gradOut.offset + b * kase.gradOut.batch + h * kase.gradOut.head + i * kase.gradOut.sequence + d]!);
            exact += o * g;
            magnitude += Math.abs(o * g);
          }
          const row = (b * hq + h) * L + i;
          const actual = deltas[row]!;
          const where = `${context}: delta of batch ${b} head ${h} row ${i}`;
          if (!Number.isFinite(exact)) expect(Object.is(actual, exact) || (Number.isNaN(exact) && Number.isNaN(actual)), `${where}: ${actual} vs ${exact}`).toBe(true);
          else expect(Math.abs(actual - exact), `${where}: ${actual} vs ${exact}`).toBeLessThanOrEqual((D + 2) * 2 ** -24 * magnitude + 1e-30);
        }
      }
    }
    recorder.finish();
    for (const buffer of [sources.q, sources.k, sources.v, sources.gradOut, sources.out, delta]) buffer.destroy();
  });

  it('is refused for packed varlen, rows not of eights, bindings beyond the limit and padded dims not a power of two', () => {
    const { problem, gradOut, shape } = CASES[0]!;
    const none = { q: {}, k: {}, v: {}, out: {}, gradOut: {} } as unknown as Record<'q' | 'k' | 'v' | 'out' | 'gradOut', GPUBuffer>;
    const sources = { ...none, gradOutLayout: gradOut };
    expect(backwardPrologueUnavailable(problem, sources, shape, 2 ** 30)).toBeNull();
    expect(backwardPrologueUnavailable({ ...problem, varlen: true }, sources, shape, 2 ** 30)).toMatch(/varlen/);
    expect(backwardPrologueUnavailable(problem, { ...sources, gradOutLayout: { ...gradOut, offset: 4 } }, shape, 2 ** 30)).toMatch(/gradOut is not in rows of eights/);
    expect(backwardPrologueUnavailable({ ...problem, layout: { ...problem.layout, out: { ...problem.layout.out, dim: 2 } } }, sources, shape, 2 ** 30)).toMatch(/out is not in rows of eights/);
    expect(backwardPrologueUnavailable(problem, sources, shape, 4096)).toMatch(/beyond the 4096 B limit/);
    expect(backwardPrologueUnavailable(problem, sources, { ...shape, headDimV: 48 }, 2 ** 30)).toMatch(/padded head dim 48 is not a power of two/);
  });
});

/** A recorder that only collects the names of the kernels it is asked to dispatch. */
function namingRecorder(device: GPUDevice): { recorder: KernelRecorder; names: string[] } {
  const raw = rawRecorder(device, device.createCommandEncoder());
  const names: string[] = [];
  return { recorder: { ...raw, dispatch: (source: KernelSource) => void names.push(source.name) }, names };
}

describe.skipIf(!gpu)('when the matrix backward records the prologue', () => {
  beforeAll(() => {
    if (gpu?.caps.shaderF16) emulateSubgroupMatrices(gpu.gpu);
  });

  /** The kernels a backward of `problem` records, on buffers of its sizes. */
  function recorded(problem: AttentionProblem): string[] {
    const device = gpu!.gpu;
    const buffer = (bytes: number) => device.createBuffer({ size: Math.max(16, Math.ceil(bytes / 16) * 16), usage: GPUBufferUsage.STORAGE });
    const { batch, queryHeads, kvHeads, queryLength, keyLength, headDimQk, headDimV } = problem;
    const rows = batch * queryHeads * queryLength;
    const keys = batch * kvHeads * keyLength;
    const buffers = {
      q: buffer(rows * headDimQk * 2),
      k: buffer(keys * headDimQk * 2),
      v: buffer(keys * headDimV * 2),
      out: buffer(rows * headDimV * 2),
      logsumexp: buffer(rows * 4),
      gradOut: buffer(rows * headDimV * 2),
      dq: buffer(rows * headDimQk * 2),
      dk: buffer(keys * headDimQk * 2),
      dv: buffer(keys * headDimV * 2),
    };
    const { recorder, names } = namingRecorder(device);
    recordFlashBackward(recorder, gpu!.caps, problem, buffers);
    recorder.finish();
    for (const b of Object.values(buffers)) b.destroy();
    return names;
  }

  it('records it in place of delta and the copies for dense rows of eights, and not otherwise', () => {
    if (!gpu!.caps.shaderF16) return;
    const sizes = { batch: 2, queryHeads: 4, kvHeads: 2, queryLength: 37, keyLength: 45, headDim: 16 };
    const dense = recorded(f16Problem(sizes));
    expect(dense[0]).toBe('flash-backward-prologue');
    expect(dense).toContain('flash-backward-key-value-matrix');
    expect(dense.filter((name) => name === 'flash-backward-delta' || name === 'padded-key-values')).toEqual([]);
    // Head dim 20: rows of 20 elements are not rows of eights.
    const scattered = recorded(f16Problem({ ...sizes, headDim: 20 }));
    expect(scattered).toContain('flash-backward-key-value-matrix');
    expect(scattered).not.toContain('flash-backward-prologue');
    expect(scattered.filter((name) => name === 'flash-backward-delta' || name === 'padded-key-values')).toHaveLength(5);
  });
});
