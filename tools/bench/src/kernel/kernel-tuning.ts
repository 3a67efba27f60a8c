import { restoreFlashTuning, tuneFlashBackward, tuneFlashForward, type BackwardTuning, type ForwardTiles, type ForwardTuning } from '@webattn/flash';
import type { Device } from '@webattn/tensor';
import type { KernelBenchConfig } from './kernel-args';

/** The run's dtypes this device can run (f16 needs shader-f16). */
const runnableDtypes = (device: Device, config: KernelBenchConfig) => config.dtypes.filter((dtype) => dtype === 'f32' || device.caps.shaderF16);

/**
 * `--tune`: flash's forward kernel and workgroup shape searched for every dtype and head dim of the run, then the
 * tiled backward's shapes (where the chosen forward is tiled), each head dim on the first shape that has it (its
 * batch and heads, at most 2048 rows: long enough to time, short enough for the whole search), so that a small
 * problem's choice is not made on a large one's.
 */
export async function tuneForShapes(device: Device, config: KernelBenchConfig): Promise<{ forward: ForwardTuning[]; backward: BackwardTuning[] }> {
  const dtypes = runnableDtypes(device, config);
  const tunings = { forward: [] as ForwardTuning[], backward: [] as BackwardTuning[] };
  for (const headDim of new Set(config.shapes.map((shape) => shape.headDim))) {
    const first = config.shapes.find((shape) => shape.headDim === headDim)!;
    const options = { dtypes, headDims: [headDim], shape: [first.batch, first.heads, Math.min(first.length, 2048)] as const };
    tunings.forward.push(...(await tuneFlashForward(device, options)));
    tunings.backward.push(...(await tuneFlashBackward(device, options)));
  }
  return tunings;
}

/**
 * `--forward-tiles`: flash's forward runs `tiles` at every dtype and head dim of the run where they fit (set as that
 * device's tuned choice). Returns one line per dtype and head dim saying whether they were set.
 */
export function setForwardTiles(device: Device, config: KernelBenchConfig, tiles: ForwardTiles): string[] {
  const dtypes = runnableDtypes(device, config);
  const name = `${tiles.kernel} ${tiles.threads} threads × ${tiles.rowsPerThread} rows × ${tiles.keys} keys`;
  const lines: string[] = [];
  for (const headDim of new Set(config.shapes.map((shape) => shape.headDim))) {
    for (const dtype of dtypes) {
      const prefix = `flash forward tiles ${dtype} D${headDim}:`;
      if (tiles.kernel === 'matrix' && dtype === 'f32') {
        lines.push(`${prefix} the matrix forward is f16 only; not set`);
      } else if (restoreFlashTuning(device, [{ dtype, headDim, chosen: tiles }]) === 1) {
        lines.push(`${prefix} set to ${name}`);
      } else {
        lines.push(`${prefix} ${name} does not fit this device and head dim; not set`);
      }
    }
  }
  return lines;
}
