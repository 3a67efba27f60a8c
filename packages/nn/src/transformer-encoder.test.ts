import { afterAll, describe, expect, it } from 'vitest';
import { type Tensor } from '@webattn/tensor';
import { expectNoGpuErrors, openTestDevice } from '@webattn/tensor/testing';
import { TransformerEncoder } from './transformer-encoder';
import { TransformerEncoderLayer } from './transformer-encoder-layer';
import { loadSafetensors, saveSafetensors } from './weights-io';
import {
  decode,
  hostStateDict,
  localFixtureBytes,
  localFixtureCases,
  localFixtureJson,
  maxError,
  toTensor,
  type Fixture,
  type FixtureTensor,
} from './test-support';

const gpu = await openTestDevice();
afterAll(() => gpu?.destroy());

const cases = localFixtureCases();
const byName = (name: string) => cases.find((c) => c.name === name)!;

async function expectClose(actual: Tensor, expected: FixtureTensor, what: string) {
  expect(actual.shape).toEqual(expected.shape);
  const { error, index } = maxError(await actual.toArray(), decode(expected));
  expect(error, `${what}: max error at ${index}`).toBeLessThan(2e-5);
}

function causalMask(fixture: Fixture): { isCausal: boolean } {
  return { isCausal: Boolean((fixture.params as { is_causal?: boolean }).is_causal ?? fixture.name.includes('causal')) };
}

describe.skipIf(!gpu)('TransformerEncoderLayer / TransformerEncoder match PyTorch (dropout 0, eval)', () => {
  it('post-norm ReLU layer with a key padding mask', async () => {
    const fixture = byName('encoder_layer_post_norm_relu');
    await expectNoGpuErrors(gpu!, async () => {
      const layer = new TransformerEncoderLayer(gpu!, 16, 4, { dimFeedforward: 32, dropout: 0, batchFirst: true }).eval();
      layer.loadStateDict(hostStateDict(fixture.state_dict!));
      const out = layer.forward(toTensor(gpu!, fixture.inputs.src!), {
        keyPaddingMask: toTensor(gpu!, fixture.inputs.src_key_padding_mask!),
      });
      await expectClose(out, (fixture.expected as Record<string, FixtureTensor>).output!, fixture.name);
    });
  });

  it('pre-norm (normFirst) GELU layer with eps 1e-6', async () => {
    const fixture = byName('encoder_layer_pre_norm_gelu');
    await expectNoGpuErrors(gpu!, async () => {
      const layer = new TransformerEncoderLayer(gpu!, 16, 2, {
        dimFeedforward: 24,
        dropout: 0,
        batchFirst: true,
        normFirst: true,
        activation: 'gelu',
        layerNormEps: 1e-6,
      }).eval();
      layer.loadStateDict(hostStateDict(fixture.state_dict!));
      const out = layer.forward(toTensor(gpu!, fixture.inputs.src!), {
        keyPaddingMask: toTensor(gpu!, fixture.inputs.src_key_padding_mask!),
      });
      await expectClose(out, (fixture.expected as Record<string, FixtureTensor>).output!, fixture.name);
    });
  });

  it('two-layer causal encoder with a final norm', async () => {
    const fixture = byName('encoder_two_layers_causal');
    await expectNoGpuErrors(gpu!, async () => {
      const encoder = new TransformerEncoder(gpu!, 16, 4, 2, { dimFeedforward: 32, dropout: 0, batchFirst: true, finalNorm: true }).eval();
      encoder.loadStateDict(hostStateDict(fixture.state_dict!));
      const out = encoder.forward(toTensor(gpu!, fixture.inputs.src!), causalMask(fixture));
      await expectClose(out, (fixture.expected as Record<string, FixtureTensor>).output!, fixture.name);
    });
  });

  it('loads the safetensors file PyTorch saved and reproduces its output; saves it back unchanged', async () => {
    const reference = localFixtureJson<{ writer: string; inputs: Record<string, FixtureTensor>; expected: Record<string, FixtureTensor> }>(
      'encoder-safetensors.json',
    );
    expect(reference.writer).toBe('safetensors.torch.save_file');
    await expectNoGpuErrors(gpu!, async () => {
      const encoder = new TransformerEncoder(gpu!, 16, 4, 2, { dimFeedforward: 32, dropout: 0, batchFirst: true, finalNorm: true }).eval();
      const bytes = localFixtureBytes('encoder.safetensors');
      expect(loadSafetensors(encoder, bytes)).toEqual({ missingKeys: [], unexpectedKeys: [] });
      const out = encoder.forward(toTensor(gpu!, reference.inputs.src!), { isCausal: true });
      await expectClose(out, reference.expected.output!, 'safetensors encoder');
      const saved = await saveSafetensors(encoder);
      const again = new TransformerEncoder(gpu!, 16, 4, 2, { dimFeedforward: 32, dropout: 0, batchFirst: true, finalNorm: true }).eval();
      loadSafetensors(again, saved);
      for (const [key, parameter] of Object.entries(again.stateDict())) {
        const original = await encoder.stateDict()[key]!.toArray();
        expect(maxError(await parameter.toArray(), original).error, key).toBe(0);
      }
    });
  });
});
