import { afterAll, describe, expect, it } from 'vitest';
import { InvalidArgumentError, cpuDevice, tensor, type Device } from '@webattn/tensor';
import { expectNoGpuErrors, openTestDevice } from '@webattn/tensor/testing';
import { Adam, AdamW } from './adam';
import { clipGradNorm } from './clip-grad';
import { Linear } from './linear';
import { mseLoss } from './loss';
import { SGD } from './sgd';
import { decode, hostStateDict, localFixtureCases, maxError, toTensor, type FixtureTensor } from './test-support';
import type { Optimizer } from './optimizer';

const gpu = await openTestDevice();
afterAll(() => gpu?.destroy());

const cases = localFixtureCases();
const byName = (name: string) => cases.find((c) => c.name === name)!;

/** PyTorch's Linear(4, 3) with the fixture's weights, and its MSE loss on the fixture's data. */
function setup(device: Device, name: string) {
  const fixture = byName(name);
  const model = new Linear(device, 4, 3);
  model.loadStateDict(hostStateDict(fixture.state_dict!));
  const x = toTensor(device, fixture.inputs.x!);
  const y = toTensor(device, fixture.inputs.y!);
  const lossStep = () => {
    const prediction = model.forward(x);
    const loss = mseLoss(prediction, y);
    prediction.dispose();
    loss.backward();
    loss.dispose();
  };
  return { fixture, model, lossStep };
}

const makers: Record<string, (model: Linear) => Optimizer> = {
  sgd_momentum: (m) => new SGD(m.parameters(), { lr: 0.1, momentum: 0.9, weightDecay: 0.01 }),
  sgd_nesterov: (m) => new SGD(m.parameters(), { lr: 0.05, momentum: 0.8, nesterov: true }),
  adam: (m) => new Adam(m.parameters(), { lr: 0.01, betas: [0.9, 0.99], eps: 1e-8, weightDecay: 0.01 }),
  adamw: (m) => new AdamW(m.parameters(), { lr: 0.02, weightDecay: 0.1 }),
};

const devices: [string, Device | null][] = [
  ['GPU fused kernel', gpu],
  ['CPU loops', cpuDevice('optimizer tests')],
];

for (const [where, device] of devices) {
  describe.skipIf(!device)(`optimizers match torch.optim step by step (${where}, f32 vs PyTorch float64)`, () => {
    for (const [name, make] of Object.entries(makers)) {
      it(name, async () => {
        const check = async () => {
          const { fixture, model, lossStep } = setup(device!, name);
          const optimizer = make(model);
          const steps = (fixture.expected as { steps: Record<string, FixtureTensor>[] }).steps;
          for (const [step, expected] of steps.entries()) {
            optimizer.zeroGrad();
            lossStep();
            optimizer.step();
            for (const [key, parameter] of Object.entries(model.stateDict())) {
              const { error, index } = maxError(await parameter.toArray(), decode(expected[key]!) as Float64Array);
              expect(error, `${name} step ${step + 1} ${key}[${index}]`).toBeLessThan(2e-6);
            }
          }
          expect(optimizer.stepCount).toBe(4);
          optimizer.dispose();
        };
        await (device!.isGpu ? expectNoGpuErrors(device!, check) : check());
      });
    }
  });
}

describe.skipIf(!gpu)('clipGradNorm', () => {
  it('returns the total norm and scales gradients as torch.nn.utils.clip_grad_norm_', async () => {
    await expectNoGpuErrors(gpu!, async () => {
      const { fixture, model, lossStep } = setup(gpu!, 'clip_grad_norm');
      lossStep();
      const norm = clipGradNorm(model.parameters(), 0.05)!;
      const expected = fixture.expected as Record<string, FixtureTensor>;
      expect(Math.abs((await norm.toArray())[0]! - decode(expected.total_norm!)[0]!)).toBeLessThan(1e-5);
      const weightError = maxError(await model.weight.grad!.toArray(), decode(expected.weight_grad!) as Float64Array);
      expect(weightError.error).toBeLessThan(1e-6);
      const biasError = maxError(await model.bias!.grad!.toArray(), decode(expected.bias_grad!) as Float64Array);
      expect(biasError.error).toBeLessThan(1e-6);
    });
  });

  it('leaves gradients alone when their norm is below maxNorm', async () => {
    await expectNoGpuErrors(gpu!, async () => {
      const { model, lossStep } = setup(gpu!, 'clip_grad_norm');
      lossStep();
      const before = await model.weight.grad!.toArray();
      const norm = await clipGradNorm(model.parameters(), 1e6)!.toArray();
      expect(norm[0]).toBeGreaterThan(0);
      expect(maxError(await model.weight.grad!.toArray(), before).error).toBe(0);
    });
  });
});

describe('optimizer arguments', () => {
  it('are checked with typed errors', () => {
    const weight = tensor(cpuDevice(), [1, 2], [2], { requiresGrad: true });
    expect(() => new SGD([weight], { lr: -1 })).toThrow(InvalidArgumentError);
    expect(() => new SGD([weight], { lr: 0.1, nesterov: true })).toThrow(/nesterov needs momentum/);
    expect(() => new Adam([weight], { betas: [1, 0.9] })).toThrow(/betas\[0\]/);
    expect(() => new AdamW([])).toThrow(/empty parameter list/);
  });
});
