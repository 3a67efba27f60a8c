/**
 * The padded copies (padded-key-values.wgsl) bit for bit against a copy made here: every mode ('plain', 'zero-nan',
 * 'record' with its NaN record), 16-byte and element-wise loads, odd element offsets and strides, dims that are not a
 * multiple of 8, copies of several blocks of 1024 chunks (a workgroup each), and packed varlen sources. The copy and
 * the record start poisoned, so a row, dim or record word the kernel skips fails the test.
 */
import { gpu } from '../test/test-device';
import type { AttentionLayout } from '@webattn/tensor';
import { expectNoGpuErrors, freshSeed } from '@webattn/tensor/testing';
import { afterAll, describe, expect, it } from 'vitest';
import { recordPaddedCopy, type PaddedCopyMode } from './padded-key-values';
import { poisonHalves, readBack, sourceBits } from '../test/padded-copies';
import { poisoningRecorder } from '../test/poisoning-recorder';

afterAll(() => gpu?.destroy());

const GROUP_ROWS = 32;

interface CopyCase {
  readonly name: string;
  readonly batches: number;
  readonly heads: number;
  /** Keys per head (packed varlen: the longest sequence). */
  readonly length: number;
  readonly dims: number;
  readonly paddedRows: number;
  readonly paddedDims: number;
  readonly layout: AttentionLayout;
  /** Elements of the source buffer. */
  readonly elements: number;
  /** Packed varlen: sequence b's keys are rows cuSeqlens[b] .. cuSeqlens[b + 1] − 1. */
  readonly cuSeqlens?: readonly number[];
}

const cases: readonly CopyCase[] = [
  { name: '[B, H, S, D] D16 from element 8, 16-byte loads', batches: 2, heads: 3, length: 37, dims: 16, paddedRows: 48, paddedDims: 16, layout: { batch: 3 * 37 * 16, head: 37 * 16, sequence: 16, dim: 1, offset: 8 }, elements: 8 + 2 * 3 * 37 * 16 },
  { name: '[B, S, H, D] D40 padded to 64, 16-byte loads', batches: 2, heads: 2, length: 33, dims: 40, paddedRows: 64, paddedDims: 64, layout: { batch: 33 * 2 * 40, head: 40, sequence: 2 * 40, dim: 1, offset: 0 }, elements: 2 * 33 * 2 * 40 },
  { name: 'D20 at an odd offset: element-wise loads from both halves of a word', batches: 1, heads: 2, length: 45, dims: 20, paddedRows: 64, paddedDims: 32, layout: { batch: 2 * 45 * 20, head: 45 * 20, sequence: 20, dim: 1, offset: 3 }, elements: 3 + 2 * 45 * 20 },
  { name: '[B, H, D, S] (dims strided by S), D128', batches: 1, heads: 1, length: 70, dims: 128, paddedRows: 80, paddedDims: 128, layout: { batch: 128 * 70, head: 128 * 70, sequence: 1, dim: 70, offset: 0 }, elements: 128 * 70 },
  // Several blocks of 1024 chunks (a workgroup each): 5 at D16, 6 at D64.
  { name: '[B, H, S, D] D16, 2560 rows', batches: 2, heads: 4, length: 300, dims: 16, paddedRows: 320, paddedDims: 16, layout: { batch: 4 * 300 * 16, head: 300 * 16, sequence: 16, dim: 1, offset: 0 }, elements: 2 * 4 * 300 * 16 },
  { name: '[B, H, S, D] D64, 768 rows', batches: 1, heads: 3, length: 200, dims: 64, paddedRows: 256, paddedDims: 64, layout: { batch: 3 * 200 * 64, head: 200 * 64, sequence: 64, dim: 1, offset: 0 }, elements: 3 * 200 * 64 },
  { name: 'packed varlen [total, H, D] D16 (sequences of 5, 0 and 29 keys)', batches: 3, heads: 2, length: 29, dims: 16, paddedRows: 32, paddedDims: 16, layout: { batch: 0, head: 16, sequence: 2 * 16, dim: 1, offset: 0 }, elements: 34 * 2 * 16, cuSeqlens: [0, 5, 5, 34] },
];

/**
 * What the kernel should write: the copy's f16 bits and, for 'record', the NaN record's words, with the words it must
 * write (a last group of fewer than 32 rows has no words for the rows past the copy's end; nothing reads them).
 */
function expectedCopy(kase: CopyCase, bits: Uint16Array, mode: PaddedCopyMode): { copy: Uint16Array; record: Uint32Array; written: boolean[] } {
  const { batches, heads, paddedRows, paddedDims, layout } = kase;
  const rowCount = batches * heads * paddedRows;
  const words = Math.ceil(paddedDims / 32);
  const copy = new Uint16Array(rowCount * paddedDims);
  const record = new Uint32Array(Math.ceil(rowCount / GROUP_ROWS) * (1 + GROUP_ROWS * 2 * words));
  const written = Array.from(record, () => false);
  for (let row = 0; row < rowCount; row++) {
    const [b, h, key] = [Math.floor(row / (heads * paddedRows)), Math.floor(row / paddedRows) % heads, row % paddedRows];
    const first = kase.cuSeqlens ? kase.cuSeqlens[b]! : 0;
    const keys = kase.cuSeqlens ? kase.cuSeqlens[b + 1]! - first : kase.length;
    const group = Math.floor(row / GROUP_ROWS) * (1 + GROUP_ROWS * 2 * words);
    const flags = group + 1 + (row % GROUP_ROWS) * 2 * words;
    written[group] = true;
    written.fill(true, flags, flags + 2 * words);
    for (let d = 0; d < paddedDims; d++) {
      if (key >= keys || d >= kase.dims) continue;
      const value = bits[layout.offset + b * layout.batch + h * layout.head + (first + key) * layout.sequence + d * layout.dim]!;
      const nan = (value & 0x7fff) > 0x7c00;
      const special = (value & 0x7c00) === 0x7c00;
      const dropped = mode === 'record' ? special : mode === 'zero-nan' ? nan : false;
      copy[row * paddedDims + d] = dropped ? 0 : value;
      if (mode === 'record' && special) {
        const bit = (1 << (d % 32)) >>> 0;
        if (nan || value === 0x7c00) record[flags + Math.floor(d / 32)]! |= bit;
        if (nan || value === 0xfc00) record[flags + words + Math.floor(d / 32)]! |= bit;
        record[group]! |= (1 << (row % GROUP_ROWS)) >>> 0;
      }
    }
  }
  return { copy, record, written };
}

describe.skipIf(!gpu)('padded copies (padded-key-values.wgsl)', () => {
  const modes: readonly PaddedCopyMode[] = ['plain', 'zero-nan', 'record'];
  it.each(cases.flatMap((kase) => modes.map((mode) => [kase.name, mode, kase] as const)))('%s, %s: the copy (and NaN record) bit for bit', async (_name, mode, kase) => {
    const device = gpu!.gpu;
    const seed = freshSeed();
    const bits = sourceBits(kase.elements, seed);
    const upload = (data: ArrayBufferView, bytes: number) => {
      const buffer = device.createBuffer({ size: Math.ceil(bytes / 16) * 16, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST });
      device.queue.writeBuffer(buffer, 0, data.buffer, data.byteOffset, Math.ceil(data.byteLength / 4) * 4);
      return buffer;
    };
    const sourceBuffer = upload(Uint16Array.from({ length: Math.ceil(bits.length / 2) * 2 }, (_, i) => bits[i] ?? 0), bits.length * 2);
    const offsets = kase.cuSeqlens ? upload(Uint32Array.from(kase.cuSeqlens), kase.cuSeqlens.length * 4) : undefined;
    const expected = expectedCopy(kase, bits, mode);
    const encoder = device.createCommandEncoder();
    const recorder = poisoningRecorder(device, encoder, poisonHalves);
    const record = mode === 'record' ? recorder.temporary(expected.record.byteLength, GPUBufferUsage.STORAGE, 'test NaN record') : undefined;
    const { buffer } = await expectNoGpuErrors(gpu!, () =>
      recordPaddedCopy(
        recorder,
        { buffer: sourceBuffer, layout: kase.layout, batches: kase.batches, heads: kase.heads, length: kase.length, dims: kase.dims, cuSeqlens: offsets },
        kase.paddedRows,
        kase.paddedDims,
        mode,
        'test padded copy',
        record,
      ),
    );
    device.queue.submit([encoder.finish()]);
    const context = `seed ${seed}`;
    const copy = new Uint16Array(await readBack(device, buffer, expected.copy.byteLength));
    const mismatch = copy.findIndex((value, i) => value !== expected.copy[i]);
    expect(mismatch, `${context}: first differing element ${mismatch} (row ${Math.floor(mismatch / kase.paddedDims)}): ${copy[mismatch]} vs ${expected.copy[mismatch]}`).toBe(-1);
    if (record) {
      const words = new Uint32Array(await readBack(device, record, expected.record.byteLength));
      const wrong = words.findIndex((word, i) => expected.written[i] === true && word !== expected.record[i]);
      expect(wrong, `${context}: record word ${wrong}: ${words[wrong]} vs ${expected.record[wrong]}`).toBe(-1);
      expect(expected.record.some((word) => word !== 0), 'the source holds specials').toBe(true);
    }
    recorder.finish();
    sourceBuffer.destroy();
    offsets?.destroy();
  });
});
