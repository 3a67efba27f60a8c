/** The training charts (Chart.js, only the parts used are registered so the bundle stays small). */
import {
  BarController,
  BarElement,
  CategoryScale,
  Chart,
  Legend,
  LineController,
  LineElement,
  LinearScale,
  LogarithmicScale,
  PointElement,
  Tooltip,
} from 'chart.js';
import type { TrainingResult } from './training/train';
import { VARIANTS, type OptionSetName, type VariantName } from '@webattn/seed-model';

Chart.register(BarController, BarElement, CategoryScale, LinearScale, LogarithmicScale, LineController, LineElement, PointElement, Legend, Tooltip);

export const VARIANT_COLOURS: Record<VariantName, string> = {
  naive: '#9aa3b5',
  mha: '#3a7bd5',
  sdpa: '#16a085',
  flash: '#e8710a',
};

const DASHES: readonly number[][] = [[], [6, 3], [2, 3], [10, 4, 2, 4], [1, 2], [12, 6]];

Chart.defaults.font.family = getComputedStyle(document.documentElement).getPropertyValue('--font-sans').trim() || 'system-ui, sans-serif';
Chart.defaults.color = '#4a5163';
Chart.defaults.animation = false;

/** ms/step per option set (x) and variant (one bar colour each). */
export function createStepChart(canvas: HTMLCanvasElement): Chart<'bar'> {
  return new Chart(canvas, {
    type: 'bar',
    data: { labels: [], datasets: [] },
    options: {
      responsive: true,
      maintainAspectRatio: false,
      plugins: {
        legend: { position: 'bottom' },
        tooltip: { callbacks: { label: (item) => `${item.dataset.label}: ${Number(item.raw).toFixed(2)} ms/step` } },
      },
      scales: {
        x: { title: { display: true, text: 'option set' } },
        y: { beginAtZero: true, title: { display: true, text: 'ms / step' } },
      },
    },
  });
}

export function updateStepChart(chart: Chart<'bar'>, results: readonly TrainingResult[]): void {
  const optionSets = [...new Set(results.map((result) => result.options))] as OptionSetName[];
  const variants = VARIANTS.filter((variant) => results.some((result) => result.variant === variant));
  chart.data.labels = optionSets;
  chart.data.datasets = variants.map((variant) => ({
    label: variant,
    backgroundColor: VARIANT_COLOURS[variant],
    borderRadius: 3,
    data: optionSets.map((options) => results.find((r) => r.variant === variant && r.options === options)?.msPerStep ?? null) as number[],
  }));
  chart.update();
}

/** Loss per step: one line per (variant, option set): colour by variant, dash by option set. */
export function createLossChart(canvas: HTMLCanvasElement): Chart<'line'> {
  return new Chart(canvas, {
    type: 'line',
    data: { labels: [], datasets: [] },
    options: {
      responsive: true,
      maintainAspectRatio: false,
      parsing: false,
      plugins: { legend: { position: 'bottom', labels: { boxHeight: 2, boxWidth: 18 } } },
      scales: {
        x: { type: 'linear', title: { display: true, text: 'step (0 = warm-up)' }, ticks: { precision: 0 } },
        y: { title: { display: true, text: 'MSE loss' } },
      },
      elements: { point: { radius: 0 }, line: { borderWidth: 2 } },
    },
  });
}

/** Adds (or extends) the line of one case. */
export function pushLoss(chart: Chart<'line'>, variant: VariantName, options: OptionSetName, optionIndex: number, step: number, loss: number): void {
  const label = `${variant} / ${options}`;
  let dataset = chart.data.datasets.find((item) => item.label === label);
  if (!dataset) {
    dataset = { label, data: [], borderColor: VARIANT_COLOURS[variant], backgroundColor: VARIANT_COLOURS[variant], borderDash: DASHES[optionIndex % DASHES.length]! };
    chart.data.datasets.push(dataset);
  }
  (dataset.data as { x: number; y: number }[]).push({ x: step, y: loss });
  chart.update('none');
}

export function clearChart(chart: Chart): void {
  chart.data.labels = [];
  chart.data.datasets = [];
  chart.update();
}
