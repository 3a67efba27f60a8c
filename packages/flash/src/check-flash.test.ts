import { bhndLayout, type AttentionProblem } from '@webattn/tensor';
import { describe, expect, it } from 'vitest';
import { checkFlash } from './check-flash';
import { testProblem } from '../test/test-problem';
import { keyValueQueryTile } from './flash-backward';
import { BACKWARD_TILE_ROWS, KEY_STEP, backwardBindings, planKernelChunks } from './flash-chunks';
import { FORWARD_ROWS_PER_THREAD, TILED_KEY_THREADS, chooseTiles, tiledKeyValueStorage, tiledQueryStorage, type FlashCaps, type ForwardTiles } from './flash-tiles';

const problem = (overrides: Partial<AttentionProblem> = {}): AttentionProblem =>
  testProblem(
    {
      batch: 2,
      queryHeads: 4,
      kvHeads: 2,
      queryLength: 100,
      keyLength: 120,
      headDimQk: 64,
      headDimV: 64,
      dtype: 'f32',
      scale: 0.125,
      layout: { q: bhndLayout(4, 100, 64), k: bhndLayout(2, 120, 64), v: bhndLayout(2, 120, 64), out: bhndLayout(4, 100, 64) },
    },
    { causal: true, requiresGrad: true, ...overrides },
  );

const caps = (overrides: Partial<FlashCaps> = {}): FlashCaps => ({
  shaderF16: true,
  maxComputeWorkgroupStorageSize: 16384,
  maxComputeInvocationsPerWorkgroup: 256,
  maxComputeWorkgroupsPerDimension: 65535,
  maxStorageBufferBindingSize: 2 ** 27,
  maxStorageBuffersPerShaderStage: 10,
  ...overrides,
});

describe('checkFlash', () => {
  it('accepts what flash runs: GQA, causal, dims up to 256 on the 16 KiB WebGPU minimum', () => {
    expect(checkFlash(problem(), caps())).toEqual([]);
    expect(checkFlash(problem({ headDimQk: 256, headDimV: 256, dtype: 'f16' }), caps())).toEqual([]);
  });

  it('returns every rejection, each naming what it got and what it needs', () => {
    const rejections = checkFlash(
      problem({ headDimQk: 320, dtype: 'f16', needWeights: true, kvHeads: 3, mask: { kind: 'bool', dtype: 'bool', strides: { batch: 0, head: 0, row: 0, column: 1 }, offset: 0 }, varlen: true }),
      caps({ shaderF16: false }),
    );
    expect(rejections.map((r) => r.check).sort()).toEqual(['dtype', 'head dim qk', 'heads', 'mask with varlen', 'needWeights', 'storage buffers'].sort());
    const headDim = rejections.find((r) => r.check === 'head dim qk')!;
    expect(headDim).toMatchObject({ backend: 'flash', got: 320, need: '1..256' });
    expect(headDim.message).toBe('flash: head dim qk 320, need 1..256');
  });

  it('rejects head dims whose smallest tile does not fit the workgroup storage', () => {
    const rejections = checkFlash(problem({ headDimQk: 256, headDimV: 256 }), caps({ maxComputeWorkgroupStorageSize: 8192 }));
    expect(rejections.map((r) => r.check)).toEqual(['workgroup storage']);
    expect(rejections[0]!.message).toContain('8192');
  });

  it('rejects more storage buffers than the device allows', () => {
    const withMask = problem({ mask: { kind: 'additive', dtype: 'f32', strides: { batch: 0, head: 0, row: 120, column: 1 }, offset: 0 }, keyLengths: true });
    expect(checkFlash(withMask, caps({ maxStorageBuffersPerShaderStage: 8 })).map((r) => r.check)).toEqual(['storage buffers']);
    expect(checkFlash({ ...withMask, requiresGrad: false }, caps({ maxStorageBuffersPerShaderStage: 8 }))).toEqual([]);
  });
});

describe('checkFlash and the binding limit', () => {
  it('accepts q and out larger than one binding, forward and backward (the dispatches are split into chunks)', () => {
    const long = problem({ batch: 1, queryHeads: 1, kvHeads: 1, queryLength: 600_000, keyLength: 8, layout: { q: bhndLayout(1, 600_000, 64), k: bhndLayout(1, 8, 64), v: bhndLayout(1, 8, 64), out: bhndLayout(1, 600_000, 64) } });
    expect(600_000 * 64 * 4).toBeGreaterThan(2 ** 27);
    expect(checkFlash({ ...long, requiresGrad: false }, caps())).toEqual([]);
    expect(checkFlash(long, caps())).toEqual([]);
  });

  it('accepts packed varlen buffers larger than one binding (split over sequences), and one sequence\'s keys over it (split over keys)', () => {
    // [total, H, D] memory; B × the longest sequence bounds the rows: 4 × 60000 rows × 4 heads × 64 × 4 B = 245 MB.
    const packed = (heads: number) => ({ batch: 0, sequence: heads * 64, head: 64, dim: 1, offset: 0 });
    const layout = { q: packed(4), k: packed(2), v: packed(2), out: packed(4) };
    const varlen = problem({ varlen: true, batch: 4, queryLength: 60000, keyLength: 100, layout, causal: false });
    expect(4 * 60000 * 4 * 64 * 4).toBeGreaterThan(2 ** 27);
    expect(checkFlash({ ...varlen, requiresGrad: false }, caps())).toEqual([]);
    expect(checkFlash(varlen, caps())).toEqual([]);
    // 600000 keys (stride 2 · 64) of one kv head span 307 MB: the forward runs split-KV over key chunks, the
    // backward splits dQ and dK/dV over keys.
    const longKeys = { ...varlen, queryLength: 100, keyLength: 600_000 };
    expect(checkFlash({ ...longKeys, requiresGrad: false }, caps())).toEqual([]);
    expect(checkFlash(longKeys, caps())).toEqual([]);
  });

  it('accepts keys of one kv head larger than one binding, forward and backward (split over keys)', () => {
    const keys = 600_000;
    const longKeys = problem({ requiresGrad: false, batch: 1, queryLength: 4, keyLength: keys, layout: { q: bhndLayout(4, 4, 64), k: bhndLayout(2, keys, 64), v: bhndLayout(2, keys, 64), out: bhndLayout(4, 4, 64) } });
    expect(keys * 64 * 4).toBeGreaterThan(2 ** 27);
    expect(checkFlash(longKeys, caps())).toEqual([]);
    expect(checkFlash({ ...longKeys, requiresGrad: true }, caps())).toEqual([]);
  });

  it('accepts a logsumexp larger than one binding (bound per chunk of rows)', () => {
    // 2 · B·Hq·L floats with the residual: 2 · 8 · 32 · 70000 · 4 B = 143 MB.
    const rows = 70_000;
    const many = problem({ batch: 8, queryHeads: 32, kvHeads: 8, queryLength: rows, keyLength: 64, headDimQk: 8, headDimV: 8, causal: false, layout: { q: bhndLayout(32, rows, 8), k: bhndLayout(8, 64, 8), v: bhndLayout(8, 64, 8), out: bhndLayout(32, rows, 8) } });
    expect(2 * 8 * 32 * rows * 4).toBeGreaterThan(2 ** 27);
    expect(checkFlash(many, caps())).toEqual([]);
  });

  const denseMask = (rows: number, keys: number) =>
    problem({
      batch: 1,
      queryLength: rows,
      keyLength: keys,
      causal: false,
      layout: { q: bhndLayout(4, rows, 64), k: bhndLayout(2, keys, 64), v: bhndLayout(2, keys, 64), out: bhndLayout(4, rows, 64) },
      mask: { kind: 'additive', dtype: 'f32', strides: { batch: 0, head: 0, row: keys, column: 1 }, offset: 0 },
    });

  /** The row counts of the backward's dQ chunks under the device limit (2^27 B). */
  const queryRowCounts = (p: AttentionProblem) => {
    const gradients = { gradOut: p.layout.out, dq: p.layout.q, dk: p.layout.k, dv: p.layout.v };
    const plan = planKernelChunks(p, backwardBindings(p, gradients, true).query, 2 ** 27);
    return 'chunks' in plan ? [...new Set(plan.chunks.map((c) => c.rows.count))] : plan;
  };

  it('accepts a dense mask whose 256 rows exceed a binding, forward and backward (the backward splits rows to 128)', () => {
    // An f32 mask [L, S] with S = 200000: 256 rows × S × 4 B = 205 MB, 128 rows 102 MB.
    const masked = denseMask(300, 200_000);
    expect(256 * 200_000 * 4).toBeGreaterThan(2 ** 27);
    expect(checkFlash({ ...masked, requiresGrad: false }, caps())).toEqual([]);
    expect(checkFlash(masked, caps())).toEqual([]);
    expect(queryRowCounts(masked)).toEqual([128, 44]);
  });

  it('accepts a dense mask whose 64 rows exceed a binding: the backward splits rows below a dK/dV query tile', () => {
    // S = 600000: 64 rows × S × 4 B = 154 MB, 32 rows 77 MB.
    const wide = denseMask(300, 600_000);
    expect(checkFlash({ ...wide, requiresGrad: false }, caps())).toEqual([]);
    expect(checkFlash(wide, caps())).toEqual([]);
    expect(queryRowCounts(wide)).toEqual([32, 12]);
    // S = 4000000 (near the longest sequence flash takes): one row takes 16 MB, so rows of 8 (16 rows: 240 MB).
    const wider = denseMask(300, 4_000_000);
    expect(checkFlash(wider, caps())).toEqual([]);
    expect(queryRowCounts(wider)).toEqual([8, 4]);
  });

  it('rejects what does not fit even the smallest chunk, naming the binding: a mask whose 256 keys of one row exceed it in the backward', () => {
    // One query row over 4096 keys lying 200000 elements apart (e.g. a column of a wider buffer): the backward's
    // smallest chunk, one row × 256 keys, spans 255 · 200000 + 1 elements (204 MB); the forward's split-KV splits
    // of 64 keys (one query row: many short splits) span 50 MB.
    const keys = 4096;
    const strided = problem({
      batch: 1,
      queryHeads: 1,
      kvHeads: 1,
      queryLength: 1,
      keyLength: keys,
      causal: false,
      layout: { q: bhndLayout(1, 1, 64), k: bhndLayout(1, keys, 64), v: bhndLayout(1, keys, 64), out: bhndLayout(1, 1, 64) },
      mask: { kind: 'additive', dtype: 'f32', strides: { batch: 0, head: 0, row: 1, column: 200_000 }, offset: 0 },
    });
    expect(checkFlash({ ...strided, requiresGrad: false }, caps())).toEqual([]);
    const rejections = checkFlash(strided, caps());
    const bytes = (255 * 200_000 + 1) * 4;
    expect(rejections.map((r) => [r.check, r.got])).toEqual([['mask binding size', `${bytes} B`]]);
    expect(rejections[0]!.message).toBe(
      `flash: mask binding size ${bytes} B, need ≤ 134217728 B (maxStorageBufferBindingSize; flash splits its dispatches over batch entries, heads, query rows and keys, down to one row × one key split in the forward and one row × 256 keys in the backward, and this binding does not fit even then)`,
    );
  });
});

describe('chooseTiles', () => {
  it('picks the largest key tile that fits the workgroup storage', () => {
    expect(chooseTiles({ headDimQk: 64, headDimV: 64 }, caps({ maxComputeWorkgroupStorageSize: 32768 }))).toMatchObject({ keys: 32, headDimQk: 64, forwardRowsPerThread: 2, forwardKeys: 32 });
    expect(chooseTiles({ headDimQk: 40, headDimV: 24 }, caps({ maxComputeWorkgroupStorageSize: 49152 }))).toMatchObject({ keys: 64, headDimQk: 64, headDimV: 32, forwardRowsPerThread: 2, forwardKeys: 32 });
    expect(chooseTiles({ headDimQk: 256, headDimV: 256 }, caps())).toMatchObject({ keys: 4, backwardRows: 4, forwardRowsPerThread: 1, forwardKeys: 4 });
    expect(chooseTiles({ headDimQk: 16, headDimV: 8 }, caps())).toMatchObject({ headDimQk: 16, headDimV: 16, forwardRowsPerThread: 4 });
    expect(chooseTiles({ headDimQk: 256, headDimV: 256 }, caps({ maxComputeWorkgroupStorageSize: 4096 }))).toBeNull();
  });

  it("takes the tiled backward's shapes from its table where they fit the device, the forward's key threads elsewhere", () => {
    const backward = (dim: number, device: FlashCaps) => {
      const tiles = chooseTiles({ headDimQk: dim, headDimV: dim, dtype: 'f32' }, device)!;
      return [tiles.tiledQuery, tiles.tiledKeyValue];
    };
    const shape = (threads: number, rowsPerThread: number, keyThreads: number) => ({ threads, rowsPerThread, keyThreads });
    const large = caps({ maxComputeWorkgroupStorageSize: 49152, maxComputeInvocationsPerWorkgroup: 1024 });
    // The table (bench notes entries 27 and 31): 32-key dQ tiles at D16 and D32, 16-row dK/dV tiles at D16 and
    // 32-row ones at D32, where the forward takes 16-key tiles on 128 threads at D16.
    expect(chooseTiles({ headDimQk: 16, headDimV: 16, dtype: 'f32' }, large)!.forward).toEqual({ kernel: 'tiled', threads: 128, rowsPerThread: 2, keys: 16 });
    expect(backward(16, large)).toEqual([shape(256, 2, 8), shape(128, 2, 4)]);
    expect(backward(32, large)).toEqual([shape(256, 2, 8), shape(256, 2, 8)]);
    expect(backward(64, large)).toEqual([shape(128, 2, 8), shape(128, 2, 8)]);
    // No entry at D128: the forward's 4 key threads, with fewer threads and rows until the kernels fit.
    expect(backward(128, large)).toEqual([shape(64, 1, 4), shape(64, 1, 4)]);
    // Over the device's invocations or storage: the table's shape with fewer threads (dQ at D16 and D32; dK/dV at D32
    // needs 47152 bytes with 256 threads, 28592 with 128).
    expect(backward(16, { ...large, maxComputeInvocationsPerWorkgroup: 128 })).toEqual([shape(128, 2, 8), shape(128, 2, 4)]);
    expect(backward(32, { ...large, maxComputeWorkgroupStorageSize: 32768 })).toEqual([shape(128, 2, 8), shape(128, 2, 8)]);
    // The 16 KiB WebGPU minimum at D32: dQ the table's shape on 64 threads, dK/dV (whose table shape does not fit on
    // any) the forward's key threads with one key per thread.
    expect(backward(32, caps())).toEqual([shape(64, 2, 8), shape(64, 1, 8)]);
    // Whatever is chosen fits: storage, threads, and workgroups whose rows or keys divide KEY_STEP.
    for (const storage of [16384, 32768, 49152]) {
      for (const dim of [16, 32, 64, 128]) {
        const device = caps({ maxComputeWorkgroupStorageSize: storage });
        const [query, keyValue] = backward(dim, device);
        if (query) expect(tiledQueryStorage(query, dim, dim)).toBeLessThanOrEqual(storage);
        if (keyValue) expect(tiledKeyValueStorage(keyValue, dim, dim)).toBeLessThanOrEqual(storage);
        for (const chosen of [query, keyValue]) {
          if (!chosen) continue;
          expect(chosen.threads).toBeLessThanOrEqual(256);
          expect(KEY_STEP % ((chosen.threads / chosen.keyThreads) * chosen.rowsPerThread)).toBe(0);
        }
      }
    }
  });

  it('gives dK/dV query tiles that divide BACKWARD_TILE_ROWS, with the default and every tunable forward', () => {
    // Backward row chunks at multiples of BACKWARD_TILE_ROWS hold whole dK/dV query tiles (the unsplit bits).
    const forwards: (ForwardTiles | undefined)[] = [undefined];
    for (const threads of [64, 128, 256]) {
      for (const rowsPerThread of FORWARD_ROWS_PER_THREAD) {
        for (const keyThreads of TILED_KEY_THREADS) forwards.push({ kernel: 'tiled', threads, rowsPerThread, keys: 4 * keyThreads });
        for (const keys of [4, 8, 16, 32]) forwards.push({ kernel: 'compact', threads, rowsPerThread, keys });
      }
    }
    const tiles = new Set<number>();
    for (const storage of [16384, 32768, 49152, 65536]) {
      for (const dim of [4, 16, 40, 64, 100, 128, 256]) {
        for (const forward of forwards) {
          const chosen = chooseTiles({ headDimQk: dim, headDimV: dim }, caps({ maxComputeWorkgroupStorageSize: storage }), forward);
          if (chosen) tiles.add(keyValueQueryTile(chosen));
        }
      }
    }
    // Both families and several tile sizes were seen.
    expect([...tiles].sort((a, b) => a - b)).toEqual([4, 8, 16, 32, 64]);
    for (const tile of tiles) expect(BACKWARD_TILE_ROWS % tile, `query tile ${tile}`).toBe(0);
  });
});
