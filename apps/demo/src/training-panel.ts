/** The seed mini-test in the browser: choose size, variants and option sets; watch progress, ms/step and loss. */
import type { Device } from '@webattn/tensor';
import { clearChart, createLossChart, createStepChart, pushLoss, updateStepChart } from './charts';
import { card, checkbox, el, errorMessage, field, formatMilliseconds, numberInput, replaceChildren } from './dom';
import {
  OPTION_SETS,
  REDUCED_SIZE,
  SEED_SIZE,
  VARIANTS,
  VARIANT_LABELS,
  type OptionSetName,
  type SeedConfig,
} from '@webattn/seed-model';
import { trainSeed, type TrainingCase, type TrainingResult } from './training/train';

const SIZE_FIELDS = [
  ['batch', 'B', 1, 64],
  ['seq', 'L', 1, 1024],
  ['embed', 'E', 1, 512],
  ['heads', 'H', 1, 16],
  ['steps', 'steps', 1, 500],
] as const;

function readConfig(form: HTMLFormElement): SeedConfig {
  const data = new FormData(form);
  const value = (name: (typeof SIZE_FIELDS)[number][0], low: number, high: number) => {
    const parsed = Math.round(Number(data.get(name)));
    return Number.isFinite(parsed) ? Math.min(high, Math.max(low, parsed)) : REDUCED_SIZE[name];
  };
  const sizes = Object.fromEntries(SIZE_FIELDS.map(([name, , low, high]) => [name, value(name, low, high)])) as Pick<SeedConfig, (typeof SIZE_FIELDS)[number][0]>;
  return { ...sizes, seed: REDUCED_SIZE.seed };
}

function resultsTable(results: readonly TrainingResult[]): HTMLElement {
  const naive = (options: OptionSetName) => results.find((r) => r.variant === 'naive' && r.options === options)?.msPerStep ?? null;
  return el(
    'table',
    { class: 'training-table', 'data-testid': 'training-table' },
    el(
      'thead',
      {},
      el('tr', {}, ['variant', 'option set', 'ms / step', 'vs naive', 'backend', 'loss first → last'].map((title) => el('th', {}, title))),
    ),
    el(
      'tbody',
      {},
      results.map((result) => {
        const base = naive(result.options);
        const ratio = base !== null && result.msPerStep ? `${(base / result.msPerStep).toFixed(2)}×` : '—';
        const first = result.losses[0];
        const last = result.losses[result.losses.length - 1];
        return el(
          'tr',
          { 'data-variant': result.variant, 'data-options': result.options, 'data-ms': result.msPerStep ?? '' },
          el('td', { class: 'mono' }, result.variant),
          el('td', { class: 'mono' }, result.options),
          el('td', { class: 'num' }, result.msPerStep === null ? el('span', { class: 'no', title: result.error ?? '' }, 'failed') : formatMilliseconds(result.msPerStep)),
          el('td', { class: 'num' }, ratio),
          el('td', { class: 'mono' }, result.backend),
          el('td', { class: 'num' }, first === undefined || last === undefined ? '—' : `${first.toFixed(4)} → ${last.toFixed(4)}`),
        );
      }),
    ),
  );
}

export function trainingPanel(device: Device): HTMLElement {
  const initial = device.isGpu ? REDUCED_SIZE : { ...REDUCED_SIZE, batch: 2, seq: 16, embed: 16, heads: 2, steps: 5 };
  const sizeInputs = SIZE_FIELDS.map(([name, label, low, high]) => field(label, numberInput(name, initial[name], low, high)));
  const presets = el(
    'div',
    { class: 'presets' },
    el('span', { class: 'field-hint' }, 'presets:'),
    el('button', { type: 'button', class: 'link', 'data-preset': 'reduced' }, 'reduced (B4 L64 E32 H4, 20 steps)'),
    el('button', { type: 'button', class: 'link', 'data-preset': 'seed' }, "the seed's (B32 L500 E128 H8, 100 steps)"),
  );
  const variantBoxes = VARIANTS.map((variant) =>
    el('label', { class: 'check', title: VARIANT_LABELS[variant] }, checkbox(`variant-${variant}`, device.isGpu || variant !== 'flash'), el('span', { class: 'mono' }, variant)),
  );
  const optionBoxes = OPTION_SETS.map((options) =>
    el('label', { class: 'check' }, checkbox(`options-${options}`, true), el('span', { class: 'mono' }, options)),
  );
  const runButton = el('button', { type: 'submit', class: 'primary', id: 'run-training' }, 'Train');
  const stopButton = el('button', { type: 'button', id: 'stop-training', disabled: true }, 'Stop');
  const form = el(
    'form',
    { class: 'training-form', id: 'training-form' },
    el('fieldset', {}, el('legend', {}, 'Size'), el('div', { class: 'field-grid five' }, sizeInputs), presets),
    el('fieldset', {}, el('legend', {}, 'Variants'), el('div', { class: 'check-grid' }, variantBoxes)),
    el('fieldset', {}, el('legend', {}, 'Option sets'), el('div', { class: 'check-grid' }, optionBoxes)),
    el('div', { class: 'actions' }, runButton, stopButton),
  );
  const progressBar = el('progress', { max: 1, value: 0, 'data-testid': 'training-progress' });
  const progressText = el('span', { class: 'small', role: 'status', 'data-testid': 'training-status' }, device.isGpu ? 'Not started.' : 'Not started. Without WebGPU the CPU trains small sizes only (flash needs a GPU).');
  const stepCanvas = el('canvas', { id: 'step-chart', 'aria-label': 'milliseconds per training step, per variant and option set' });
  const lossCanvas = el('canvas', { id: 'loss-chart', 'aria-label': 'training loss per step' });
  const table = el('div', { class: 'training-results' });
  const panel = card(
    'training',
    'Seed mini-test: training in the browser',
    'y = head(LayerNorm(x + attention(x))), MSE towards a fixed random target, Adam; one warm-up step, then timed steps',
    el(
      'div',
      { class: 'training-layout' },
      form,
      el(
        'div',
        { class: 'training-output' },
        el('div', { class: 'progress-row' }, progressBar, progressText),
        el(
          'div',
          { class: 'chart-row' },
          el('figure', { class: 'chart' }, el('figcaption', {}, 'ms per step', el('span', { class: 'caption-note' }, 'lower is faster')), el('div', { class: 'chart-box' }, stepCanvas)),
          el('figure', { class: 'chart' }, el('figcaption', {}, 'loss curve', el('span', { class: 'caption-note' }, 'same maths, same line')), el('div', { class: 'chart-box' }, lossCanvas)),
        ),
        table,
      ),
    ),
  );
  const stepChart = createStepChart(stepCanvas);
  const lossChart = createLossChart(lossCanvas);

  presets.addEventListener('click', (event) => {
    const preset = (event.target as HTMLElement).dataset.preset;
    if (!preset) return;
    const size = preset === 'seed' ? SEED_SIZE : REDUCED_SIZE;
    for (const [name] of SIZE_FIELDS) (form.elements.namedItem(name) as HTMLInputElement).value = String(size[name]);
  });

  let stopRequested = false;
  stopButton.addEventListener('click', () => {
    stopRequested = true;
    stopButton.disabled = true;
    progressText.textContent = 'Stopping after this step…';
  });

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const config = readConfig(form);
    const data = new FormData(form);
    const variants = VARIANTS.filter((variant) => data.has(`variant-${variant}`));
    const optionSets = OPTION_SETS.filter((options) => data.has(`options-${options}`));
    const cases: TrainingCase[] = optionSets.flatMap((options) => variants.map((variant) => ({ variant, options })));
    if (!cases.length) {
      progressText.textContent = 'Choose at least one variant and one option set.';
      return;
    }
    const work = config.batch * config.heads * config.seq * config.seq * config.embed;
    if (!device.isGpu && work > 2 ** 22) {
      progressText.textContent = `Without WebGPU the CPU trains small sizes only: B·H·L²·E = ${work.toLocaleString()} is too much; try the values shown at start.`;
      return;
    }
    stopRequested = false;
    runButton.disabled = true;
    stopButton.disabled = false;
    panel.dataset.state = 'running';
    clearChart(stepChart);
    clearChart(lossChart);
    replaceChildren(table);
    const results: TrainingResult[] = [];
    progressBar.max = cases.length * (config.steps + 1);
    progressBar.value = 0;
    const started = performance.now();
    trainSeed(device, config, cases, {
      onCaseStart: (current, index, count) => {
        progressText.textContent = `${current.variant} / ${current.options} (${index + 1} of ${count}): warm-up step, compiling the pipelines…`;
      },
      onStep: (progress) => {
        progressBar.value = progress.done;
        progressText.textContent = `${progress.current.variant} / ${progress.current.options}: step ${progress.step} of ${config.steps} — ${progress.done} / ${progress.total} steps`;
        pushLoss(lossChart, progress.current.variant, progress.current.options, OPTION_SETS.indexOf(progress.current.options), progress.step, progress.loss);
      },
      onCaseDone: (result) => {
        results.push(result);
        updateStepChart(stepChart, results);
        replaceChildren(table, resultsTable(results));
      },
      shouldStop: () => stopRequested,
    })
      .then((finished) => {
        const failed = finished.filter((result) => result.error !== null).length;
        const seconds = ((performance.now() - started) / 1000).toFixed(1);
        progressText.textContent = `${stopRequested ? 'Stopped' : 'Done'}: ${finished.length} of ${cases.length} runs in ${seconds} s${failed ? `, ${failed} could not run (hover "failed")` : ''}.`;
        panel.dataset.state = 'done';
      })
      .catch((error: unknown) => {
        progressText.textContent = errorMessage(error);
        panel.dataset.state = 'failed';
      })
      .finally(() => {
        runButton.disabled = false;
        stopButton.disabled = true;
      });
  });
  return panel;
}

