import { tuneFlashForward, type ForwardTuning } from '@webattn/flash';
import type { Device } from '@webattn/tensor';
import type { KernelBenchConfig } from './kernel-args';

/**
 * `--tune`: flash's forward workgroup shape searched for every dtype and head dim of the run, on the first
 * shape's batch and heads with at most 2048 rows (long enough to time, short enough for the whole search).
 */
export async function tuneForShapes(device: Device, config: KernelBenchConfig): Promise<ForwardTuning[]> {
  const first = config.shapes[0]!;
  const dtypes = config.dtypes.filter((dtype) => dtype === 'f32' || device.caps.shaderF16);
  const headDims = [...new Set(config.shapes.map((shape) => shape.headDim))];
  return tuneFlashForward(device, { dtypes, headDims, shape: [first.batch, first.heads, Math.min(first.length, 2048)] });
}
