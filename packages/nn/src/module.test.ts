import { describe, expect, it } from 'vitest';
import { Device, DeviceMismatchError, InvalidArgumentError, ShapeError, cpuDevice, tensor } from '@webattn/tensor';
import { freshSeed, randomValues } from '@webattn/tensor/testing';
import { Dropout } from './dropout';
import { LayerNorm } from './layer-norm';
import { Linear } from './linear';
import { MultiheadAttention } from './multihead-attention';
import { ReLU } from './activation';
import { Sequential } from './sequential';
import { TransformerEncoder } from './transformer-encoder';
import { TransformerEncoderLayer } from './transformer-encoder-layer';
import { localFixtureCases } from './test-support';

const device = cpuDevice('module tests');
const torchCase = (name: string) => localFixtureCases().find((c) => c.name === name)!;

describe('Module', () => {
  it('names parameters exactly as PyTorch state_dict() does (TransformerEncoderLayer, TransformerEncoder)', () => {
    const layer = new TransformerEncoderLayer(device, 16, 4, { dimFeedforward: 32, dropout: 0 });
    expect(Object.keys(layer.stateDict())).toEqual(Object.keys(torchCase('encoder_layer_post_norm_relu').state_dict!));
    const encoder = new TransformerEncoder(device, 16, 4, 2, { dimFeedforward: 32, finalNorm: true });
    expect(Object.keys(encoder.stateDict())).toEqual(Object.keys(torchCase('encoder_two_layers_causal').state_dict!));
  });

  it('names MultiheadAttention parameters as PyTorch (separate kdim/vdim weights, bias_k/bias_v)', () => {
    const mha = new MultiheadAttention(device, 24, 3, { kdim: 10, vdim: 14, addBiasKV: true, addZeroAttn: true });
    expect(Object.keys(mha.stateDict())).toEqual(Object.keys(torchCase('mha_kdim_vdim_bias_kv_zero_attn').state_dict!));
    const shapes = Object.fromEntries(mha.namedParameters().map(([k, v]) => [k, v.shape]));
    const torchShapes = Object.fromEntries(
      Object.entries(torchCase('mha_kdim_vdim_bias_kv_zero_attn').state_dict!).map(([k, v]) => [k, v.shape]),
    );
    expect(shapes).toEqual(torchShapes);
    const noBias = new MultiheadAttention(device, 16, 4, { bias: false });
    expect(Object.keys(noBias.stateDict())).toEqual(Object.keys(torchCase('mha_no_bias_causal').state_dict!));
  });

  it('Sequential names children 0, 1, ... and train()/eval() reach every descendant', () => {
    const model = new Sequential(device, new Linear(device, 3, 4), new ReLU(device), new Dropout(device, 0.2), new Linear(device, 4, 2));
    expect(Object.keys(model.stateDict())).toEqual(['0.weight', '0.bias', '3.weight', '3.bias']);
    expect(model.parameters()).toHaveLength(4);
    model.eval();
    expect(model.namedModules().every(([, m]) => !m.training)).toBe(true);
    model.train();
    expect(model.namedModules().every(([, m]) => m.training)).toBe(true);
  });

  it('loadStateDict copies values in place, keeps the parameter objects and checks keys and shapes', async () => {
    const seed = freshSeed();
    const layer = new Linear(device, 3, 2, { seed });
    const weight = layer.weight;
    const values = randomValues(6, seed);
    const result = layer.loadStateDict({ weight: { shape: [2, 3], data: values }, bias: tensor(device, [0.5, -0.25]) });
    expect(result).toEqual({ missingKeys: [], unexpectedKeys: [] });
    expect(layer.weight).toBe(weight);
    expect(Array.from(await weight.toArray())).toEqual(Array.from(values));
    expect(Array.from(await layer.bias!.toArray())).toEqual([0.5, -0.25]);
    expect(() => layer.loadStateDict({ weight: { shape: [2, 3], data: values } })).toThrow(/missing keys: bias/);
    expect(() => layer.loadStateDict({ ...layer.stateDict(), extra: { shape: [1], data: [1] } })).toThrow(InvalidArgumentError);
    expect(layer.loadStateDict({ bias: { shape: [2], data: [1, 2] } }, { strict: false }).missingKeys).toEqual(['weight']);
    expect(() => layer.loadStateDict({ weight: { shape: [3, 2], data: values }, bias: layer.bias! })).toThrow(ShapeError);
  });

  it('refuses a value from another device, naming the fix', () => {
    const other = new Device({
      kind: 'cpu',
      info: { kind: 'cpu', adapter: 'second cpu', vendor: '', architecture: '', description: '', reason: 'test' },
      caps: device.caps,
    });
    const layer = new LayerNorm(device, 4);
    expect(() => layer.loadStateDict({ weight: tensor(other, [1, 1, 1, 1]), bias: layer.bias! })).toThrow(DeviceMismatchError);
  });

  it('initialises deterministically from a seed, with PyTorch’s bounds', async () => {
    const seed = freshSeed();
    const a = await new Linear(device, 64, 8, { seed }).weight.toArray();
    const b = await new Linear(device, 64, 8, { seed }).weight.toArray();
    const c = await new Linear(device, 64, 8, { seed: seed + 1 }).weight.toArray();
    expect(Array.from(a)).toEqual(Array.from(b));
    expect(Array.from(a)).not.toEqual(Array.from(c));
    const bound = 1 / Math.sqrt(64);
    expect(Math.max(...a.map(Math.abs))).toBeLessThanOrEqual(bound);
    expect(Math.max(...a.map(Math.abs))).toBeGreaterThan(bound * 0.9);
  });

  it('rejects invalid layer arguments with typed errors', () => {
    expect(() => new Linear(device, 0, 3)).toThrow(/inFeatures must be a positive integer, got 0/);
    expect(() => new MultiheadAttention(device, 10, 3)).toThrow(/divisible by numHeads 3/);
    expect(() => new Dropout(device, 1)).toThrow(/\[0, 1\), got 1/);
    expect(() => new LayerNorm(device, [])).toThrow(InvalidArgumentError);
    expect(() => new TransformerEncoder(device, 8, 2, 0)).toThrow(/numLayers/);
  });
});
