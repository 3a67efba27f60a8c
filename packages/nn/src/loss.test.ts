import { afterAll, describe, expect, it } from 'vitest';
import { InvalidArgumentError, ShapeError } from '@webattn/tensor';
import { expectNoGpuErrors, openTestDevice } from '@webattn/tensor/testing';
import { crossEntropy, mseLoss } from './loss';
import { decode, localFixtureCases, maxError, toTensor, type FixtureTensor } from './test-support';

const gpu = await openTestDevice();
afterAll(() => gpu?.destroy());

const fixture = localFixtureCases().find((c) => c.name === 'losses')!;
const expected = fixture.expected as Record<string, FixtureTensor>;

describe.skipIf(!gpu)('losses match torch.nn.functional (GPU)', () => {
  it('cross entropy with ignore_index: value and gradient', async () => {
    await expectNoGpuErrors(gpu!, async () => {
      const logits = toTensor(gpu!, fixture.inputs.logits!);
      logits.requiresGrad = true;
      const target = Array.from(decode(fixture.inputs.target!));
      expect(target).toContain(-100);
      const loss = crossEntropy(logits, target);
      expect(Math.abs((await loss.toArray())[0]! - decode(expected.cross_entropy!)[0]!)).toBeLessThan(1e-6);
      loss.backward();
      const { error, index } = maxError(await logits.grad!.toArray(), decode(expected.cross_entropy_grad!));
      expect(error, `grad[${index}]`).toBeLessThan(1e-6);
    });
  });

  it('cross entropy with label smoothing', async () => {
    await expectNoGpuErrors(gpu!, async () => {
      const logits = toTensor(gpu!, fixture.inputs.logits!);
      const loss = crossEntropy(logits, Array.from(decode(fixture.inputs.target!)), { labelSmoothing: 0.1 });
      expect(Math.abs((await loss.toArray())[0]! - decode(expected.cross_entropy_label_smoothing!)[0]!)).toBeLessThan(1e-6);
    });
  });

  it('mse: value and gradient', async () => {
    await expectNoGpuErrors(gpu!, async () => {
      const prediction = toTensor(gpu!, fixture.inputs.prediction!);
      prediction.requiresGrad = true;
      const loss = mseLoss(prediction, toTensor(gpu!, fixture.inputs.goal!));
      expect(Math.abs((await loss.toArray())[0]! - decode(expected.mse!)[0]!)).toBeLessThan(1e-6);
      loss.backward();
      expect(maxError(await prediction.grad!.toArray(), decode(expected.mse_grad!)).error).toBeLessThan(1e-6);
    });
  });

  it('reject bad targets and shapes with typed errors', () => {
    const logits = toTensor(gpu!, fixture.inputs.logits!);
    expect(() => crossEntropy(logits, [0, 1])).toThrow(ShapeError);
    expect(() => crossEntropy(logits, [0, 1, 2, 3, 4, 5])).toThrow(/target 5 at row 5 is not a class in 0..4/);
    expect(() => crossEntropy(logits, [0, 1, 2, 3, 4, 0], { labelSmoothing: 2 })).toThrow(InvalidArgumentError);
    expect(() => mseLoss(logits, toTensor(gpu!, fixture.inputs.goal!))).toThrow(ShapeError);
  });
});
