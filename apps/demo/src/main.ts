/**
 * The demo page: opens a WebGPU device (or the CPU without one), then lays out the device panel, the attention
 * playground with its explanation and heatmap, and the seed mini-test. `?cpu` forces the CPU path.
 */
import { createDevice, type Device } from '@webattn/tensor';
import './style.css';
import { devicePanel } from './device-panel';
import { el, errorMessage, replaceChildren } from './dom';
import { playgroundPanel } from './playground-panel';
import { trainingPanel } from './training-panel';

function noWebGpuBanner(device: Device): HTMLElement | null {
  if (device.isGpu) return null;
  return el(
    'div',
    { class: 'banner', role: 'alert', 'data-testid': 'no-webgpu' },
    el('strong', {}, 'WebGPU is not available here. '),
    device.info.reason,
    '. Everything below still runs on the CPU in JavaScript (the float64 reference is the backend), for small sizes. For the GPU path use a recent Chrome or Edge, or Firefox/Safari with WebGPU enabled.',
  );
}

function header(device: Device): HTMLElement {
  return el(
    'header',
    { class: 'page-header' },
    el(
      'div',
      { class: 'brand' },
      el('h1', {}, 'webattn'),
      el('p', {}, 'PyTorch-style scaled dot-product attention for WebGPU, in TypeScript'),
    ),
    el('span', { class: device.isGpu ? 'device-badge gpu' : 'device-badge cpu', 'data-testid': 'device-kind' }, device.isGpu ? `WebGPU · ${device.info.adapter}` : 'CPU only'),
  );
}

async function start(root: HTMLElement): Promise<void> {
  const forceCpu = new URLSearchParams(location.search).has('cpu');
  const device = await createDevice(forceCpu ? { prefer: 'cpu' } : {});
  device.onLost?.((reason) => {
    root.prepend(el('div', { class: 'banner', role: 'alert' }, el('strong', {}, 'The GPU device was lost: '), reason, '. Reload the page to start again.'));
  });
  replaceChildren(
    root,
    header(device),
    noWebGpuBanner(device),
    el('main', { class: 'layout' }, el('div', { class: 'main-column' }, playgroundPanel(device), trainingPanel(device)), el('aside', { class: 'side-column' }, devicePanel(device))),
    el('footer', { class: 'page-footer' }, 'webattn demo · packages: @webattn/tensor, reference, flash, sdpa, nn · `localStorage.WEBATTN_DEBUG = "sdpa"` logs every dispatch'),
  );
  root.dataset.ready = 'true';
}

const root = document.getElementById('app')!;
start(root).catch((error: unknown) => {
  replaceChildren(root, el('div', { class: 'banner', role: 'alert' }, el('strong', {}, 'The demo could not start: '), errorMessage(error)));
  root.dataset.ready = 'failed';
});
