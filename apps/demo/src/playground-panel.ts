/** The attention playground: a form for one scaledDotProductAttention call, its result, explanation and heatmap. */
import type { Device } from '@webattn/tensor';
import { card, checkbox, el, errorMessage, field, formatMilliseconds, numberInput, replaceChildren, select } from './dom';
import { drawHeatmap, heatmapLegend } from './heatmap';
import {
  BACKEND_CHOICES,
  DEFAULT_PLAYGROUND,
  MASK_KINDS,
  MASK_LABELS,
  PLAYGROUND_LIMITS,
  type BackendChoice,
  type MaskKind,
  type PlaygroundConfig,
} from './playground-config';
import { runPlayground, type PlaygroundResult } from './playground-run';

function sizeInput(name: keyof typeof PLAYGROUND_LIMITS, value: number): HTMLInputElement {
  const [min, max] = PLAYGROUND_LIMITS[name];
  return numberInput(name, value, min, max);
}

function buildForm(initial: PlaygroundConfig, device: Device): HTMLFormElement {
  // f16 tensors on the GPU need shader-f16; the CPU device stores f16 values rounded in f32 arrays.
  const f16Missing = device.isGpu && !device.caps.shaderF16;
  const windowSide = (name: string, value: number) => numberInput(name, value, -1, 4096);
  return el(
    'form',
    { class: 'playground-form', id: 'playground-form' },
    el(
      'fieldset',
      {},
      el('legend', {}, 'Shape'),
      el(
        'div',
        { class: 'field-grid five' },
        field('B', sizeInput('batch', initial.batch)),
        field('H', sizeInput('heads', initial.heads)),
        field('L', sizeInput('queryLength', initial.queryLength)),
        field('S', sizeInput('keyLength', initial.keyLength)),
        field('D', sizeInput('headDim', initial.headDim)),
      ),
      el('p', { class: 'field-hint' }, 'batch, heads, query rows, key rows, head dim'),
      el(
        'div',
        { class: 'field-grid two' },
        field('dtype', select('dtype', [['f32', 'f32'], ['f16', f16Missing ? 'f16 (needs shader-f16)' : 'f16', f16Missing]] as const, initial.dtype)),
        field('backend', select<BackendChoice>('backend', BACKEND_CHOICES.map((name) => [name, name === 'auto' ? 'auto' : `force ${name}`] as const), initial.backend)),
      ),
    ),
    el(
      'fieldset',
      {},
      el('legend', {}, 'Masking'),
      field('mask', select<MaskKind>('mask', MASK_KINDS.map((kind) => [kind, MASK_LABELS[kind]] as const), initial.mask)),
      el(
        'div',
        { class: 'field-grid two' },
        el('label', { class: 'check' }, checkbox('causal', initial.causal), 'causal'),
        el('label', { class: 'check' }, checkbox('windowEnabled', initial.window !== null), 'sliding window'),
      ),
      el(
        'div',
        { class: 'field-grid three' },
        field('alignment', select('alignment', [['top-left', 'top-left'], ['bottom-right', 'bottom-right']] as const, initial.alignment)),
        field('window left', windowSide('windowLeft', initial.window?.[0] ?? 16)),
        field('window right', windowSide('windowRight', initial.window?.[1] ?? 0)),
      ),
      el('p', { class: 'field-hint' }, 'top-left as PyTorch, bottom-right as FlashAttention (matters when L ≠ S); window −1 = unbounded'),
      el('div', { class: 'field-grid three' }, field('dropout p', numberInput('dropoutP', initial.dropoutP, 0, 0.95, 0.05))),
    ),
    el(
      'fieldset',
      {},
      el('legend', {}, 'Run'),
      el(
        'div',
        { class: 'field-grid four' },
        field('seed', numberInput('seed', initial.seed, 0, 2 ** 31 - 1)),
        field('repeats', sizeInput('repeats', initial.repeats)),
        field('map batch', numberInput('heatmapBatch', initial.heatmapBatch, 0, 15)),
        field('map head', numberInput('heatmapHead', initial.heatmapHead, 0, 31)),
      ),
    ),
    el('div', { class: 'actions' }, el('button', { type: 'submit', class: 'primary', id: 'run-playground' }, 'Run attention')),
  );
}

const clampInteger = (value: string, low: number, high: number, fallback: number): number => {
  const parsed = Math.round(Number(value));
  return Number.isFinite(parsed) ? Math.min(high, Math.max(low, parsed)) : fallback;
};

/** Reads the form; out-of-range numbers are clamped to the field's bounds. */
export function readPlaygroundForm(form: HTMLFormElement): PlaygroundConfig {
  const data = new FormData(form);
  const text = (name: string) => String(data.get(name) ?? '');
  const size = (name: keyof typeof PLAYGROUND_LIMITS) =>
    clampInteger(text(name), PLAYGROUND_LIMITS[name][0], PLAYGROUND_LIMITS[name][1], DEFAULT_PLAYGROUND[name]);
  const dropout = Number(text('dropoutP'));
  return {
    batch: size('batch'),
    heads: size('heads'),
    queryLength: size('queryLength'),
    keyLength: size('keyLength'),
    headDim: size('headDim'),
    dtype: text('dtype') === 'f16' ? 'f16' : 'f32',
    mask: (MASK_KINDS as readonly string[]).includes(text('mask')) ? (text('mask') as MaskKind) : 'none',
    causal: data.has('causal'),
    alignment: text('alignment') === 'bottom-right' ? 'bottom-right' : 'top-left',
    dropoutP: Number.isFinite(dropout) ? Math.min(0.95, Math.max(0, dropout)) : 0,
    window: data.has('windowEnabled')
      ? [clampInteger(text('windowLeft'), -1, 4096, -1), clampInteger(text('windowRight'), -1, 4096, -1)]
      : null,
    backend: (BACKEND_CHOICES as readonly string[]).includes(text('backend')) ? (text('backend') as BackendChoice) : 'auto',
    seed: clampInteger(text('seed'), 0, 2 ** 31 - 1, DEFAULT_PLAYGROUND.seed),
    repeats: size('repeats'),
    heatmapBatch: clampInteger(text('heatmapBatch'), 0, 15, 0),
    heatmapHead: clampInteger(text('heatmapHead'), 0, 31, 0),
  };
}

function stat(label: string, value: string, testId: string, extra: Record<string, string | number> = {}, tone = '', note = ''): HTMLElement {
  return el(
    'div',
    { class: `stat ${tone}` },
    el('span', { class: 'stat-label' }, label),
    el('span', { class: 'stat-value', 'data-testid': testId, ...extra }, value),
    note ? el('span', { class: 'stat-note' }, note) : null,
  );
}

function summary(result: PlaygroundResult): HTMLElement {
  const items: HTMLElement[] = [];
  items.push(stat('backend that ran', result.ran?.backend ?? '—', 'ran-backend', {}, '', result.config.backend === 'auto' ? 'chosen by the dispatcher' : 'forced'));
  if (result.timing) {
    items.push(
      stat('time, median', formatMilliseconds(result.timing.medianMs), 'time', { 'data-value': result.timing.medianMs }, '', `fastest ${formatMilliseconds(result.timing.minMs)} of ${result.timing.runs}`),
    );
  }
  if (result.check) {
    const { error, tolerance, pass, referenceError } = result.check;
    const tone = pass ? 'good' : 'bad';
    items.push(
      stat('max error vs float64', error.toExponential(2), 'max-error', { 'data-value': error, 'data-tolerance': tolerance, 'data-pass': String(pass) }, tone, pass ? 'within tolerance ✓' : 'above tolerance ✕'),
      stat('tolerance', tolerance.toExponential(2), 'tolerance', {}, '', `3 × ${result.config.dtype} reference's ${referenceError.toExponential(1)} + floor`),
    );
  }
  return el('div', { class: 'stats' }, items);
}

/** A rejection's message without the leading "backend: " (the table already says which backend). */
const reasonText = (backend: string, message: string): string => (message.startsWith(`${backend}: `) ? message.slice(backend.length + 2) : message);

function dispatcherNote(result: PlaygroundResult): HTMLElement | null {
  const explanation = result.explanation;
  if (!explanation) return null;
  return el(
    'div',
    { class: 'dispatcher-note' },
    el('h3', {}, 'Dispatcher'),
    el('p', { class: 'mono small problem-summary' }, explanation.summary),
    el('p', {}, el('span', { class: 'muted' }, 'would choose: '), explanation.reason),
    result.ran ? el('p', {}, el('span', { class: 'muted' }, 'dispatch log: '), `${result.ran.backend} ran`) : null,
  );
}

function explainTable(result: PlaygroundResult): HTMLElement | null {
  const explanation = result.explanation;
  if (!explanation) return null;
  return el(
    'div',
    { class: 'explain', 'data-testid': 'explain' },
    el('h3', {}, 'Explain: every backend, eligible or not'),
    el(
      'table',
      { class: 'explain-table' },
      el('thead', {}, el('tr', {}, el('th', {}, 'backend'), el('th', {}, 'eligible'), el('th', {}, 'estimate'), el('th', {}, 'reasons'))),
      el(
        'tbody',
        {},
        explanation.backends.map((report) =>
          el(
            'tr',
            { class: report.name === explanation.chosen ? 'chosen' : report.eligible ? '' : 'rejected', 'data-backend': report.name, 'data-eligible': String(report.eligible) },
            el('td', { class: 'mono' }, report.name, report.name === explanation.chosen ? el('span', { class: 'badge' }, 'chosen') : null),
            el('td', {}, report.eligible ? el('span', { class: 'yes' }, '✓ yes') : el('span', { class: 'no' }, '✕ no')),
            el('td', { class: 'mono' }, report.estimatedMicroseconds === null ? '—' : formatMilliseconds(report.estimatedMicroseconds / 1000)),
            el(
              'td',
              {},
              report.rejections.length
                ? el(
                    'ul',
                    { class: 'reasons' },
                    report.rejections.map((item) => el('li', {}, el('span', { class: 'check-name' }, item.check), reasonText(report.name, item.message))),
                  )
                : el('span', { class: 'muted' }, 'no objection'),
            ),
          ),
        ),
      ),
    ),
  );
}

function heatmapBlock(result: PlaygroundResult): HTMLElement {
  const data = result.heatmap;
  if (!data) {
    return el('div', { class: 'heatmap', 'data-testid': 'heatmap' }, el('h3', {}, 'Attention heatmap'), el('p', { class: 'muted small' }, result.heatmapSkipped ?? 'not run'));
  }
  return el(
    'div',
    { class: 'heatmap', 'data-testid': 'heatmap', 'data-rendered': 'true' },
    el('h3', {}, `Attention weights: batch ${data.batch}, head ${data.head}`),
    el('div', { class: 'heatmap-frame' }, drawHeatmap(data, 300)),
    el('p', { class: 'small muted axis-note' }, `${data.rows} queries (rows) × ${data.columns} keys (columns), from the ${data.backend ?? '?'} backend`),
    heatmapLegend(data),
  );
}

export function playgroundPanel(device: Device): HTMLElement {
  const initial: PlaygroundConfig = device.isGpu
    ? DEFAULT_PLAYGROUND
    : { ...DEFAULT_PLAYGROUND, batch: 1, heads: 2, queryLength: 32, keyLength: 32, headDim: 16, repeats: 2 };
  const form = buildForm(initial, device);
  const status = el('p', { class: 'status', role: 'status', 'data-testid': 'playground-status' }, 'Choose a problem and run it.');
  const results = el('div', { class: 'playground-results', id: 'playground-results' });
  const panel = card(
    'playground',
    'Attention playground',
    'One scaledDotProductAttention call on this device, timed and checked against the float64 reference',
    el('div', { class: 'playground-layout' }, form, el('div', { class: 'playground-output' }, status, results)),
  );
  const button = form.querySelector<HTMLButtonElement>('#run-playground')!;
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const config = readPlaygroundForm(form);
    button.disabled = true;
    panel.dataset.state = 'running';
    status.textContent = `Running B${config.batch} H${config.heads} L${config.queryLength} S${config.keyLength} D${config.headDim} ${config.dtype}…`;
    runPlayground(device, config)
      .then((result) => {
        status.textContent = result.failure ? '' : `Done on the ${device.isGpu ? 'GPU' : 'CPU'}.`;
        replaceChildren(
          results,
          result.failure ? el('p', { class: 'failure', 'data-testid': 'failure' }, result.failure) : null,
          summary(result),
          result.checkSkipped && !result.failure ? el('p', { class: 'muted small' }, `Reference check skipped: ${result.checkSkipped}`) : null,
          el('div', { class: 'result-columns' }, result.failure ? null : heatmapBlock(result), dispatcherNote(result)),
          explainTable(result),
        );
        panel.dataset.state = result.failure ? 'failed' : 'done';
      })
      .catch((error: unknown) => {
        status.textContent = '';
        replaceChildren(results, el('p', { class: 'failure', 'data-testid': 'failure' }, errorMessage(error)));
        panel.dataset.state = 'failed';
      })
      .finally(() => {
        button.disabled = false;
      });
  });
  // Run the default problem once on load, so the page opens with a result to look at.
  setTimeout(() => form.requestSubmit(), 0);
  return panel;
}
