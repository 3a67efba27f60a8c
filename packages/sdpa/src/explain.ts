/**
 * Selection without running anything: every backend's ordered checks run (all of them, so the explanation shows
 * every reason), the eligible backend with the lowest estimated cost wins, ties go to the priority order.
 */
import type { Rejection } from '@webattn/tensor';
import type { SdpaBackend, SdpaBackendName, SdpaRequest } from './backend';
import { calibrationFor } from './cost-model';
import { summarizeProblem } from './dispatch-log';

export interface SdpaBackendReport {
  readonly name: SdpaBackendName;
  readonly eligible: boolean;
  readonly rejections: readonly Rejection[];
  /** Estimated microseconds with the device's calibration (cost-model.ts); null when not eligible. */
  readonly estimatedMicroseconds: number | null;
}

export interface SdpaExplanation {
  /** The backend that would run, or null when none can (scaledDotProductAttention would throw). */
  readonly chosen: SdpaBackendName | null;
  readonly reason: string;
  readonly summary: string;
  /** Which measured calibration the cost estimates use (cost-model.ts). */
  readonly calibration: string;
  /** Every backend in priority order. */
  readonly backends: readonly SdpaBackendReport[];
}

/** Every check in order; a condition reported twice (dispatcher check and package check) is kept once. */
function runChecks(backend: SdpaBackend, request: SdpaRequest): Rejection[] {
  const rejections: Rejection[] = [];
  const add = (item: Rejection) => {
    if (!rejections.some((seen) => seen.check === item.check)) rejections.push(item);
  };
  for (const item of backend.checks) {
    const result = item.check(backend.name, request);
    if (!result) continue;
    if (Array.isArray(result)) (result as readonly Rejection[]).forEach(add);
    else add(result as Rejection);
  }
  return rejections;
}

const formatMicroseconds = (value: number): string =>
  value >= 1000 ? `${(value / 1000).toFixed(1)} ms` : `${Math.round(value)} µs`;

function chooseReason(chosen: SdpaBackendReport, reports: readonly SdpaBackendReport[], request: SdpaRequest): string {
  const eligible = reports.filter((report) => report.eligible);
  const others = reports.filter((report) => !report.eligible && report.rejections.every((item) => item.check !== 'device'));
  const firstReasons = others.map((report) => report.rejections[0]!.message).join('; ');
  const reasons: string[] = [];
  if (request.problem.needWeights) reasons.push('needWeights: only math and cpu return the attention weights');
  if (request.restriction && request.restriction.backends.length === 1) {
    reasons.push(`forced by the ${request.restriction.source} [${request.restriction.backends[0]}]`);
  }
  if (eligible.length > 1) {
    const ranked = [...eligible].sort((a, b) => a.estimatedMicroseconds! - b.estimatedMicroseconds!);
    reasons.push(
      `lowest estimated cost (${ranked.map((report) => `${report.name} ${formatMicroseconds(report.estimatedMicroseconds!)}`).join(' < ')})`,
    );
  } else if (!reasons.length) {
    reasons.push('the only eligible backend');
  }
  if (firstReasons && (eligible.length === 1 || request.problem.needWeights)) reasons.push(`not ${firstReasons}`);
  return `${chosen.name}: ${reasons.join('; ')}`;
}

/** Explains a described request against `backends` (in priority order). */
export function explainRequest(request: SdpaRequest, backends: readonly SdpaBackend[]): SdpaExplanation {
  const calibration = calibrationFor(request.target.adapter);
  const reports: SdpaBackendReport[] = backends.map((backend) => {
    const rejections = runChecks(backend, request);
    const eligible = rejections.length === 0;
    return {
      name: backend.name,
      eligible,
      rejections,
      estimatedMicroseconds: eligible ? backend.estimateMicroseconds(request.problem, calibration) : null,
    };
  });
  let chosen: SdpaBackendReport | null = null;
  for (const report of reports) {
    if (!report.eligible) continue;
    // Strictly lower only: equal estimates keep the earlier (higher priority) backend.
    if (!chosen || report.estimatedMicroseconds! < chosen.estimatedMicroseconds!) chosen = report;
  }
  const summary = summarizeProblem(request.problem, request.target.kind);
  return {
    chosen: chosen?.name ?? null,
    reason: chosen ? chooseReason(chosen, reports, request) : 'no eligible backend',
    summary,
    calibration: calibration.device,
    backends: reports,
  };
}
