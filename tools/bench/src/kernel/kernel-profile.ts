/**
 * `--profile`: where a pass's GPU time goes, kernel by kernel. After a pass is timed, `calls` more calls run under
 * Device.profileDispatches (a begin and end timestamp around every dispatch) and each kernel's time is summed and
 * divided by the calls: e.g. the flash backward's delta, dK/dV and dQ kernels. Each pass is timed alone, so the
 * kernels' sum is at most the pass's time (the rest: gaps between passes).
 */
import { MAX_PROFILED_DISPATCHES, type Device, type DispatchTime, type TimedCall } from '@webattn/tensor';

/** One kernel's share of a call: GPU milliseconds and dispatches per call. */
export interface KernelShare {
  readonly kernel: string;
  readonly ms: number;
  readonly dispatches: number;
}

/** Per-call shares of `dispatches` (recorded over `calls` calls), kernels in the order they first ran. */
export function kernelShares(dispatches: readonly DispatchTime[], calls: number): KernelShare[] {
  const totals = new Map<string, { ms: number; dispatches: number }>();
  for (const { kernel, ms } of dispatches) {
    const total = totals.get(kernel) ?? { ms: 0, dispatches: 0 };
    totals.set(kernel, { ms: total.ms + ms, dispatches: total.dispatches + 1 });
  }
  return [...totals].map(([kernel, total]) => ({ kernel, ms: total.ms / calls, dispatches: total.dispatches / calls }));
}

/**
 * A pass's kernels per call, the dispatches per call that came after the profile's capacity (untimed), and the
 * buffers per call the device's pool created while the profiled calls were recorded before one submit, as the timed
 * samples are (each new storage buffer costs Dawn a clear of its whole size on first use: bench notes, entry 42).
 */
export interface PassProfile {
  readonly kernels: readonly KernelShare[];
  readonly untimedDispatches: number;
  readonly createdBuffers: number;
  readonly createdBytes: number;
}

/**
 * Profiles up to `wanted` calls of `call` (their outputs disposed): as many as the profile's timestamps hold, after
 * one call that counts the dispatches per call.
 */
export async function profileCalls(device: Device, call: TimedCall, wanted: number): Promise<PassProfile> {
  const run = async (calls: number) => {
    const before = device.pool.stats();
    const { result, dispatches, untimed } = await device.profileDispatches(() => Array.from({ length: calls }, () => call()));
    const after = device.pool.stats();
    for (const outputs of result) for (const output of outputs) output.dispose();
    return { dispatches, untimed, createdBuffers: after.created - before.created, createdBytes: after.createdBytes - before.createdBytes };
  };
  const first = await run(1);
  const perCall = first.dispatches.length + first.untimed;
  const calls = Math.max(1, Math.min(wanted, Math.floor(MAX_PROFILED_DISPATCHES / Math.max(1, perCall))));
  const profiled = calls === 1 ? first : await run(calls);
  return {
    kernels: kernelShares(profiled.dispatches, calls),
    untimedDispatches: profiled.untimed / calls,
    createdBuffers: profiled.createdBuffers / calls,
    createdBytes: profiled.createdBytes / calls,
  };
}

/** "    kernels: flash-backward-key-value-tiled 0.612 ms (49%), flash-backward-query-tiled 0.598 ms (48%), …; 3 new buffers (24.0 MiB) per call" */
export function formatKernelShares(profile: PassProfile, passMs: number): string {
  const parts = profile.kernels.map(({ kernel, ms, dispatches }) => {
    const count = dispatches === 1 ? '' : `, ${Number(dispatches.toFixed(2))} dispatches`;
    return `${kernel} ${ms.toFixed(ms >= 100 ? 1 : 3)} ms (${((100 * ms) / passMs).toFixed(0)}%${count})`;
  });
  const untimed = profile.untimedDispatches > 0 ? `; ${Number(profile.untimedDispatches.toFixed(2))} more dispatches untimed` : '';
  const created =
    profile.createdBuffers > 0 ? `; ${Number(profile.createdBuffers.toFixed(2))} new buffers (${(profile.createdBytes / 2 ** 20).toFixed(1)} MiB) per call` : '';
  return `    kernels: ${parts.join(', ')}${untimed}${created}`;
}
