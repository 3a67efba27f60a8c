import { openTestDevice } from '@webattn/tensor/testing';
import { afterAll, describe, expect, it } from 'vitest';
import { mathKernelSources, type MathVariant } from './math-kernels';

const gpu = await openTestDevice();
afterAll(() => gpu?.destroy());

const variants: MathVariant[] = [false, true].flatMap((f16) =>
  (['none', 'bool', 'f32', 'f16'] as const).map((mask) => ({ f16, mask })),
);

describe('math backend kernels', () => {
  it('name variants by dtype and mask kind only (never shapes)', () => {
    const keys = variants.map((variant) => mathKernelSources(variant).scores.variant);
    expect(new Set(keys).size).toBe(variants.length);
    expect(keys).toContain('f16|mask-bool');
  });

  it('generate the expected WGSL for the f16 + bool-mask scores variant', () => {
    expect(mathKernelSources({ f16: true, mask: 'bool' }).scores.code()).toMatchSnapshot();
  });

  it.skipIf(!gpu)('compile without errors or warnings in every variant', async () => {
    for (const variant of variants) {
      for (const [name, source] of Object.entries(mathKernelSources(variant))) {
        const module = gpu!.gpu.createShaderModule({ code: source.code(), label: `${name} ${source.variant}` });
        const messages = (await module.getCompilationInfo()).messages.map(
          (message) => `${name} ${source.variant}: ${message.type} line ${message.lineNum}: ${message.message}`,
        );
        expect(messages).toEqual([]);
      }
    }
  });
});
