/**
 * The demo page: opens a WebGPU device (or the CPU without one), then lays out the device panel, the attention
 * playground with its explanation and heatmap, and the seed mini-test. `?cpu` forces the CPU path.
 */
import { cpuDevice, createDevice, type Device } from '@webattn/tensor';
import './style.css';
import { devicePanel } from './device-panel';
import { card, el, errorMessage, replaceChildren } from './dom';
import { playgroundPanel } from './playground-panel';
import { trainingPanel } from './training-panel';

const FORCED_CPU_REASON = 'the address asks for the CPU path (?cpu), as a browser without WebGPU would get';

function noWebGpuBanner(device: Device): HTMLElement | null {
  if (device.isGpu) return null;
  const forced = device.info.reason === FORCED_CPU_REASON;
  return el(
    'div',
    { class: 'banner', role: 'alert', 'data-testid': 'no-webgpu' },
    el('strong', {}, forced ? 'Running without WebGPU: ' : 'WebGPU is not available here: '),
    device.info.reason,
    '. Everything below still runs on the CPU in JavaScript (the float64 reference is the attention backend), for small sizes. ',
    forced ? el('a', { href: '?' }, 'Use WebGPU') : 'For the GPU path use a recent Chrome or Edge, or Firefox or Safari with WebGPU enabled.',
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

function aboutPanel(): HTMLElement {
  const item = (title: string, text: string) => el('li', {}, el('strong', {}, title), ' ', text);
  return card(
    'about',
    'How to read this',
    'What each part shows',
    el(
      'ul',
      { class: 'about-list' },
      item('Playground.', 'One scaledDotProductAttention call. The dispatcher asks every backend\'s checks, picks the cheapest eligible one, and says why the others cannot run. Forcing a backend that cannot run fails with all of its reasons.'),
      item('Error.', 'The output against the float64 reference; the tolerance is 3 × what a reference computed in the same precision gets wrong, plus a tiny floor.'),
      item('Heatmap.', 'The attention weights of one batch and head. Grey cells are removed by the mask, causal, window or key lengths; dark allowed cells are small weights or dropped out.'),
      item('Mini-test.', 'Trains a small MultiheadAttention model with each attention variant and option set, and times each step.'),
    ),
  );
}

async function start(root: HTMLElement): Promise<void> {
  const forceCpu = new URLSearchParams(location.search).has('cpu');
  const device = forceCpu ? cpuDevice(FORCED_CPU_REASON) : await createDevice();
  device.onLost?.((reason) => {
    root.prepend(el('div', { class: 'banner', role: 'alert' }, el('strong', {}, 'The GPU device was lost: '), reason, '. Reload the page to start again.'));
  });
  replaceChildren(
    root,
    header(device),
    noWebGpuBanner(device),
    el('main', { class: 'layout' }, el('div', { class: 'main-column' }, playgroundPanel(device), trainingPanel(device)), el('aside', { class: 'side-column' }, devicePanel(device), aboutPanel())),
    el('footer', { class: 'page-footer' }, 'webattn demo · packages: @webattn/tensor, reference, flash, sdpa, nn · `localStorage.WEBATTN_DEBUG = "sdpa"` logs every dispatch'),
  );
  root.dataset.ready = 'true';
}

const root = document.getElementById('app')!;
start(root).catch((error: unknown) => {
  replaceChildren(root, el('div', { class: 'banner', role: 'alert' }, el('strong', {}, 'The demo could not start: '), errorMessage(error)));
  root.dataset.ready = 'failed';
});
