/** The device panel: which adapter runs the demo, the features webattn uses, and the limits that bound it. */
import type { Device } from '@webattn/tensor';
import { card, el } from './dom';

const FEATURES: readonly (readonly [string, string, (device: Device) => boolean])[] = [
  ['shader-f16', 'f16 storage and arithmetic in WGSL', (d) => d.caps.shaderF16],
  ['subgroups', 'subgroup operations', (d) => d.caps.subgroups],
  ['chromium-experimental-subgroup-matrix', 'subgroup matrices (tensor cores)', (d) => d.caps.subgroupMatrix],
  ['timestamp-query', 'GPU timestamps', (d) => d.caps.timestampQuery],
];

const bytes = (value: number): string =>
  value >= 2 ** 30 ? `${(value / 2 ** 30).toFixed(value % 2 ** 30 ? 1 : 0)} GiB` : value >= 2 ** 20 ? `${(value / 2 ** 20).toFixed(0)} MiB` : value >= 1024 ? `${(value / 1024).toFixed(0)} KiB` : `${value} B`;

function limitRows(device: Device): [string, string][] {
  const caps = device.caps;
  return [
    ['maxComputeWorkgroupStorageSize', bytes(caps.maxComputeWorkgroupStorageSize)],
    ['maxComputeInvocationsPerWorkgroup', String(caps.maxComputeInvocationsPerWorkgroup)],
    ['maxComputeWorkgroupSizeX', String(caps.maxComputeWorkgroupSizeX)],
    ['maxComputeWorkgroupsPerDimension', caps.maxComputeWorkgroupsPerDimension.toLocaleString()],
    ['maxStorageBufferBindingSize', bytes(caps.maxStorageBufferBindingSize)],
    ['maxBufferSize', bytes(caps.maxBufferSize)],
    ['maxStorageBuffersPerShaderStage', String(caps.maxStorageBuffersPerShaderStage)],
  ];
}

export function devicePanel(device: Device): HTMLElement {
  const info = device.info;
  if (!device.isGpu) {
    return card(
      'device',
      'Device',
      'No WebGPU: the CPU path',
      el('dl', { class: 'facts' }, el('dt', {}, 'adapter'), el('dd', { 'data-testid': 'adapter' }, 'CPU (JavaScript)'), el('dt', {}, 'why'), el('dd', {}, info.reason)),
    );
  }
  const subgroupSizes =
    device.caps.subgroups && device.caps.subgroupMaxSize
      ? device.caps.subgroupMinSize === device.caps.subgroupMaxSize
        ? String(device.caps.subgroupMinSize)
        : `${device.caps.subgroupMinSize}–${device.caps.subgroupMaxSize}`
      : '—';
  const matrixConfigs = device.caps.subgroupMatrixConfigs.map(
    (config) => `${config.M}×${config.N}×${config.K} ${config.componentType}→${config.resultComponentType}`,
  );
  return card(
    'device',
    'Device',
    'The adapter, the features webattn uses, its limits',
    el(
      'dl',
      { class: 'facts' },
      el('dt', {}, 'adapter'),
      el('dd', { 'data-testid': 'adapter' }, info.adapter),
      el('dt', {}, 'subgroup size'),
      el('dd', {}, subgroupSizes),
    ),
    el(
      'ul',
      { class: 'features' },
      FEATURES.map(([name, label, has]) =>
        el(
          'li',
          { class: has(device) ? 'feature on' : 'feature off', 'data-feature': name, title: name },
          el('span', { class: 'feature-mark', 'aria-hidden': 'true' }, has(device) ? '✓' : '✕'),
          el('span', {}, label),
        ),
      ),
    ),
    matrixConfigs.length ? el('p', { class: 'small' }, 'subgroup matrix configs: ', matrixConfigs.join(', ')) : null,
    el(
      'table',
      { class: 'limits' },
      el('tbody', {}, limitRows(device).map(([name, value]) => el('tr', {}, el('th', { scope: 'row' }, name.replace(/([a-z])([A-Z])/g, '$1\u200b$2')), el('td', {}, value)))),
    ),
  );
}
