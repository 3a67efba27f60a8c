/**
 * The shared attention conformance suite (@webattn/reference/testing) on the flash backend, forward (out and
 * logsumexp) and backward. Flash never materialises the attention weights: cases that also ask for them
 * ('weights') run without `needWeights` and check everything else.
 */
import { gpu } from '../test/test-device';
import { attentionCases } from '@webattn/reference/testing';
import { afterAll, describe, it } from 'vitest';
import { checkFlashCase } from '../test/conformance-case';

afterAll(() => gpu?.destroy());

describe.skipIf(!gpu)('flash passes the attention conformance suite', () => {
  for (const kase of attentionCases) {
    it(kase.name, async () => {
      const device = gpu!;
      if (kase.dtype === 'f16' && !device.caps.shaderF16) return;
      await checkFlashCase(device, kase, { backward: true });
    });
  }
});
