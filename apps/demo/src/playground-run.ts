/**
 * One playground run, without any DOM: explain the call, run it on the device (forced backend or the
 * dispatcher's choice), time it, compare the output with the float64 reference (the project's tolerance rule:
 * a small multiple of a same-precision reference's own error), and gather one head's attention weights with the
 * mask's effect for the heatmap.
 */
import { attentionReference, keyAllowed, sequenceBounds, type ReferenceOptions } from '@webattn/reference';
import { compareAttention } from '@webattn/reference/testing';
import {
  explainSdpa,
  onSdpaDispatch,
  scaledDotProductAttention,
  scaledDotProductAttentionWithWeights,
  type SdpaBackendName,
  type SdpaExplanation,
  type SdpaOptions,
} from '@webattn/sdpa';
import { describeAttention, type Device } from '@webattn/tensor';
import { buildAttentionInputs, type AttentionInputs } from './attention-inputs';
import { errorMessage } from './dom';
import {
  CPU_WORK_BUDGET,
  HEATMAP_CELL_BUDGET,
  INPUT_ELEMENT_BUDGET,
  REFERENCE_WORK_BUDGET,
  attentionWork,
  largestInput,
  type PlaygroundConfig,
} from './playground-config';

export interface ReferenceCheck {
  /** Largest |output − float64 reference|. */
  readonly error: number;
  /** Largest |same-precision reference − float64 reference|. */
  readonly referenceError: number;
  readonly tolerance: number;
  readonly pass: boolean;
}

export interface HeatmapData {
  readonly batch: number;
  readonly head: number;
  readonly rows: number;
  readonly columns: number;
  /** [rows, columns] attention weights after dropout. */
  readonly weights: Float32Array;
  /** [rows, columns]: 1 where the mask, causal, window and key lengths allow the key. */
  readonly allowed: Uint8Array;
  /** The backend that produced the weights (only math and cpu materialise them). */
  readonly backend: SdpaBackendName | null;
}

export interface PlaygroundResult {
  readonly config: PlaygroundConfig;
  readonly device: 'gpu' | 'cpu';
  /** Every backend, eligible or not, with its reasons. null when the inputs themselves were invalid. */
  readonly explanation: SdpaExplanation | null;
  /** The backend that actually ran (from the dispatch log) and why. */
  readonly ran: { readonly backend: SdpaBackendName; readonly reason: string } | null;
  /** Why the call could not run (e.g. a forced backend that is not eligible), or null. */
  readonly failure: string | null;
  /** Median and fastest of the timed runs, in milliseconds (after one warm-up that compiles the pipelines). */
  readonly timing: { readonly medianMs: number; readonly minMs: number; readonly runs: number } | null;
  readonly check: ReferenceCheck | null;
  /** Why the reference check did not run, when it did not. */
  readonly checkSkipped: string | null;
  readonly heatmap: HeatmapData | null;
  readonly heatmapSkipped: string | null;
}

const median = (values: readonly number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
};

function referenceOptions(inputs: AttentionInputs): ReferenceOptions {
  const { attnMask: _tensorMask, ...rest } = inputs.options;
  return { ...rest, ...(inputs.hostMask ? { attnMask: inputs.hostMask } : {}) };
}

/** Which cells (i, j) of batch b, head h may be attended: causal, window, key lengths, and the mask itself. */
function allowedCells(inputs: AttentionInputs, batch: number, head: number): Uint8Array {
  const problem = describeAttention(inputs.q, inputs.k, inputs.v, inputs.options);
  const bounds = sequenceBounds(problem, { keyLengths: inputs.keyLengths ?? undefined })[batch]!;
  const L = problem.queryLength;
  const S = problem.keyLength;
  const allowed = new Uint8Array(L * S);
  const mask = inputs.hostMask;
  for (let i = 0; i < L; i++) {
    for (let j = 0; j < S; j++) {
      let ok = keyAllowed(problem, bounds, i, j);
      if (ok && mask) {
        // Bool masks are [B, 1, L, S], additive ones [1, H, L, S] (see attention-inputs.ts).
        const value = mask.dtype === 'bool' ? mask.data[(batch * L + i) * S + j]! : mask.data[(head * L + i) * S + j]!;
        ok = mask.dtype === 'bool' ? value !== 0 : value !== Number.NEGATIVE_INFINITY;
      }
      allowed[i * S + j] = ok ? 1 : 0;
    }
  }
  return allowed;
}

async function collectHeatmap(device: Device, inputs: AttentionInputs, config: PlaygroundConfig): Promise<HeatmapData> {
  const batch = Math.min(config.heatmapBatch, config.batch - 1);
  const head = Math.min(config.heatmapHead, config.heads - 1);
  let backend: SdpaBackendName | null = null;
  const stop = onSdpaDispatch((event) => (backend = event.backend));
  try {
    const { output, weights } = scaledDotProductAttentionWithWeights(inputs.q, inputs.k, inputs.v, inputs.options);
    const all = (await weights.toArray()) as Float32Array;
    output.dispose();
    weights.dispose();
    await device.sync();
    const L = config.queryLength;
    const S = config.keyLength;
    const start = (batch * config.heads + head) * L * S;
    return {
      batch,
      head,
      rows: L,
      columns: S,
      weights: all.slice(start, start + L * S),
      allowed: allowedCells(inputs, batch, head),
      backend,
    };
  } finally {
    stop();
  }
}

/** Runs the playground's call on `device`; never throws for a call that cannot run (the result says why). */
export async function runPlayground(device: Device, config: PlaygroundConfig): Promise<PlaygroundResult> {
  const work = attentionWork(config);
  const base = { config, device: device.kind } as const;
  const refuse = (failure: string): PlaygroundResult => ({
    ...base,
    explanation: null,
    ran: null,
    failure,
    timing: null,
    check: null,
    checkSkipped: 'not run',
    heatmap: null,
    heatmapSkipped: 'not run',
  });
  if (!device.isGpu && work > CPU_WORK_BUDGET) {
    return refuse(
      `Without WebGPU everything runs in JavaScript: B·H·L·S·D = ${work.toLocaleString()} is above the CPU budget of ${CPU_WORK_BUDGET.toLocaleString()}. Choose smaller sizes.`,
    );
  }
  if (largestInput(config) > INPUT_ELEMENT_BUDGET) {
    return refuse(
      `The inputs are drawn in JavaScript first: B·H·max(L, S)·D = ${largestInput(config).toLocaleString()} elements is above the demo's ${INPUT_ELEMENT_BUDGET.toLocaleString()}. Choose smaller sizes.`,
    );
  }
  const inputs = await buildAttentionInputs(device, config);
  try {
    const callOptions: SdpaOptions = config.backend === 'auto' ? inputs.options : { ...inputs.options, backends: [config.backend] };
    let explanation: SdpaExplanation | null = null;
    try {
      explanation = explainSdpa(inputs.q, inputs.k, inputs.v, callOptions);
    } catch (error) {
      return refuse(errorMessage(error));
    }
    let ran: PlaygroundResult['ran'] = null;
    const stop = onSdpaDispatch((event) => {
      if (event.phase === 'forward') ran = { backend: event.backend, reason: event.reason };
    });
    let output: Float32Array;
    const times: number[] = [];
    try {
      // Warm-up: compiles the pipelines; its output is the one checked against the reference.
      const warm = scaledDotProductAttention(inputs.q, inputs.k, inputs.v, callOptions);
      output = (await warm.toArray()) as Float32Array;
      warm.dispose();
      await device.sync();
      for (let run = 0; run < config.repeats; run++) {
        const started = performance.now();
        const out = scaledDotProductAttention(inputs.q, inputs.k, inputs.v, callOptions);
        await device.sync();
        times.push(performance.now() - started);
        out.dispose();
      }
    } catch (error) {
      return { ...base, explanation, ran, failure: errorMessage(error), timing: null, check: null, checkSkipped: 'not run', heatmap: null, heatmapSkipped: 'not run' };
    } finally {
      stop();
    }
    const timing = { medianMs: median(times), minMs: Math.min(...times), runs: times.length };

    let check: ReferenceCheck | null = null;
    let checkSkipped: string | null = null;
    if (work <= REFERENCE_WORK_BUDGET) {
      const options = referenceOptions(inputs);
      const oracle = attentionReference(inputs.hostQ, inputs.hostK, inputs.hostV, options);
      const samePrecision = attentionReference(inputs.hostQ, inputs.hostK, inputs.hostV, { ...options, precision: config.dtype });
      const comparison = compareAttention(output, oracle.out, samePrecision.out, config.dtype);
      check = { error: comparison.error, referenceError: comparison.referenceError, tolerance: comparison.tolerance, pass: comparison.pass };
    } else {
      checkSkipped = `B·H·L·S·D = ${work.toLocaleString()} is above the JavaScript reference's budget (${REFERENCE_WORK_BUDGET.toLocaleString()})`;
    }

    let heatmap: HeatmapData | null = null;
    let heatmapSkipped: string | null = null;
    if (config.queryLength * config.keyLength > HEATMAP_CELL_BUDGET) {
      heatmapSkipped = `L·S = ${config.queryLength * config.keyLength} cells is more than the heatmap shows (${HEATMAP_CELL_BUDGET})`;
    } else {
      try {
        heatmap = await collectHeatmap(device, inputs, config);
      } catch (error) {
        heatmapSkipped = errorMessage(error);
      }
    }
    return { ...base, explanation, ran, failure: null, timing, check, checkSkipped, heatmap, heatmapSkipped };
  } finally {
    inputs.dispose();
  }
}
