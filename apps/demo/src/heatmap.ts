/**
 * The attention heatmap: one [L, S] matrix of weights drawn on a canvas, one pixel per cell scaled up without
 * smoothing. Allowed cells use a viridis-like colour ramp (square-root scale up to the 99th percentile, so a few
 * rows with one or two allowed keys — the first causal rows — do not wash out the rest);
 * cells the mask, causal, window or key lengths remove are drawn in a light neutral, so the mask's effect is
 * visible at a glance (a dropped-out cell is allowed but zero: it shows as the ramp's dark end).
 */
import { el } from './dom';
import type { HeatmapData } from './playground-run';

const RAMP: readonly (readonly [number, number, number])[] = [
  [68, 1, 84],
  [59, 82, 139],
  [33, 145, 140],
  [94, 201, 98],
  [253, 231, 37],
];

export const MASKED_COLOUR: readonly [number, number, number] = [226, 228, 236];

export function rampColour(t: number): [number, number, number] {
  const x = Math.min(1, Math.max(0, t)) * (RAMP.length - 1);
  const index = Math.min(RAMP.length - 2, Math.floor(x));
  const f = x - index;
  const a = RAMP[index]!;
  const b = RAMP[index + 1]!;
  return [0, 1, 2].map((c) => Math.round(a[c]! + (b[c]! - a[c]!) * f)) as [number, number, number];
}

/** The top of the colour scale: the 99th percentile of the allowed cells' weights (0 when there are none). */
export function colourScaleTop(data: HeatmapData): number {
  const values: number[] = [];
  for (let i = 0; i < data.weights.length; i++) if (data.allowed[i]) values.push(data.weights[i]!);
  if (!values.length) return 0;
  values.sort((a, b) => a - b);
  return values[Math.floor(0.99 * (values.length - 1))]!;
}

/** Draws `data` into a new canvas of about `size` CSS pixels on its longer side. */
export function drawHeatmap(data: HeatmapData, size = 360): HTMLCanvasElement {
  const { rows, columns, weights, allowed } = data;
  const largest = colourScaleTop(data);
  const image = new ImageData(columns, rows);
  for (let cell = 0; cell < rows * columns; cell++) {
    const [r, g, b] = allowed[cell] ? rampColour(largest > 0 ? Math.sqrt(weights[cell]! / largest) : 0) : MASKED_COLOUR;
    image.data.set([r, g, b, 255], cell * 4);
  }
  const source = document.createElement('canvas');
  source.width = columns;
  source.height = rows;
  source.getContext('2d')!.putImageData(image, 0, 0);

  const scale = size / Math.max(rows, columns);
  const cssWidth = Math.max(1, Math.round(columns * scale));
  const cssHeight = Math.max(1, Math.round(rows * scale));
  const ratio = globalThis.devicePixelRatio || 1;
  const canvas = el('canvas', {
    class: 'heatmap-canvas',
    width: Math.round(cssWidth * ratio),
    height: Math.round(cssHeight * ratio),
    role: 'img',
    'aria-label': `attention weights of batch ${data.batch}, head ${data.head}: ${rows} queries × ${columns} keys`,
    'data-rows': rows,
    'data-columns': columns,
  });
  canvas.style.width = `${cssWidth}px`;
  canvas.style.height = `${cssHeight}px`;
  const context = canvas.getContext('2d')!;
  context.imageSmoothingEnabled = false;
  context.drawImage(source, 0, 0, canvas.width, canvas.height);
  return canvas;
}

/** The colour legend: the ramp from 0 to the largest weight, and the masked colour. */
export function heatmapLegend(data: HeatmapData): HTMLElement {
  const largest = colourScaleTop(data);
  let maskedCells = 0;
  for (let i = 0; i < data.weights.length; i++) if (!data.allowed[i]) maskedCells++;
  const stops = Array.from({ length: 11 }, (_, i) => `rgb(${rampColour(i / 10).join(',')}) ${i * 10}%`).join(', ');
  const bar = el('span', { class: 'legend-ramp' });
  bar.style.background = `linear-gradient(to right, ${stops})`;
  const swatch = el('span', { class: 'legend-swatch' });
  swatch.style.background = `rgb(${MASKED_COLOUR.join(',')})`;
  const share = ((100 * maskedCells) / Math.max(1, data.weights.length)).toFixed(1);
  return el(
    'div',
    { class: 'heatmap-legend' },
    el('span', { class: 'legend-item' }, '0', bar, `≥ ${largest.toPrecision(3)}`, el('span', { class: 'muted' }, ' (√ scale, top = 99th percentile)')),
    el('span', { class: 'legend-item' }, swatch, `masked: ${maskedCells.toLocaleString()} cells (${share} %)`),
  );
}
