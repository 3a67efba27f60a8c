import { describe, expect, it } from 'vitest';
import { tileLoads, tiledForwardShuffles, type ForwardTiles } from './flash-tiles';

describe('tiledForwardShuffles', () => {
  const tiled: ForwardTiles = { kernel: 'tiled', threads: 64, rowsPerThread: 2, keys: 16 };
  const caps = { subgroups: true, subgroupMinSize: 8, subgroupMaxSize: 32 };

  it('shuffles where every subgroup holds a row group, at value head dims up to 32', () => {
    expect(tiledForwardShuffles(caps, tiled, 16)).toBe(true);
    expect(tiledForwardShuffles(caps, tiled, 32)).toBe(true);
    expect(tiledForwardShuffles(caps, tiled, 64)).toBe(false);
    expect(tiledForwardShuffles(caps, { ...tiled, keys: 64 }, 32)).toBe(false);
    expect(tiledForwardShuffles({ ...caps, subgroupMinSize: 4 }, tiled, 16)).toBe(true);
    expect(tiledForwardShuffles({ ...caps, subgroupMinSize: 2 }, tiled, 16)).toBe(false);
    expect(tiledForwardShuffles({ ...caps, subgroups: false }, tiled, 16)).toBe(false);
    expect(tiledForwardShuffles(caps, { ...tiled, kernel: 'compact' }, 16)).toBe(false);
  });
});

describe('tileLoads', () => {
  it("is each thread's share of a tile's vec4s, rounded up", () => {
    expect(tileLoads(32, 64, 256)).toBe(2);
    expect(tileLoads(16, 16, 64)).toBe(1);
    expect(tileLoads(16, 24, 256)).toBe(1);
    expect(tileLoads(64, 128, 128)).toBe(16);
    expect(tileLoads(20, 100, 64)).toBe(8);
  });
});
