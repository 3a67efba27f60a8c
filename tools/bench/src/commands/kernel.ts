import { appendFileSync } from 'node:fs';
import type { Command } from '../command';
import { describeDevice, formatDeviceReport } from '../device-report';
import { KERNEL_USAGE, parseKernelArgs } from '../kernel/kernel-args';
import { formatKernelShares } from '../kernel/kernel-profile';
import { formatBackwardTunings, formatRecord, formatTiles, formatTunings, tableHeader } from '../kernel/kernel-table';
import { setForwardTiles, tuneForShapes } from '../kernel/kernel-tuning';
import { OPTION_DESCRIPTIONS, OPTION_NAMES } from '../kernel/option-sets';
import { runKernelBench } from '../kernel/run-kernel-bench';

/**
 * `kernel`: forward and backward attention kernels timed on the GPU, flash against math (and split-KV
 * 'efficient'), one record per shape, dtype, option set, backend and pass with ms and TFLOP/s.
 */
export const kernelCommand: Command = {
  name: 'kernel',
  summary: 'time attention kernels (flash vs math, forward and backward): ms, TFLOP/s and speedup per shape and option set',
  usage: KERNEL_USAGE,
  async run({ device, args, print }) {
    const config = parseKernelArgs(args);
    const report = describeDevice(device);
    for (const line of formatDeviceReport(report)) print(line);
    print();
    if (!device.isGpu) {
      print('kernel: the benchmark times WebGPU kernels and this is the CPU device; run it where a WebGPU adapter exists');
      return { ok: false, device: report, records: [] };
    }
    const tunings = config.tune ? await tuneForShapes(device, config) : { forward: [], backward: [] };
    for (const line of [...formatTunings(tunings.forward), ...formatBackwardTunings(tunings.backward)]) print(line);
    if (config.forwardTiles) for (const line of setForwardTiles(device, config, config.forwardTiles)) print(line);
    for (const name of OPTION_NAMES) print(`option ${name}: ${OPTION_DESCRIPTIONS[name]}`);
    print('FLOPs: 4·B·H·N²·D forward, 2.5× that backward, halved for causal; "vs math" = math ms ÷ this ms');
    let headerPrinted = false;
    const result = await runKernelBench(device, config, {
      onCase(records) {
        if (!headerPrinted) {
          print();
          print(tableHeader());
          headerPrinted = true;
        }
        for (const record of records) {
          print(formatRecord(record));
          if (record.profile && record.ms !== null) print(formatKernelShares(record.profile, record.ms));
        }
        if (config.recordsFile) appendFileSync(config.recordsFile, records.map((record) => `${JSON.stringify(record)}\n`).join(''));
      },
    });
    print();
    for (const line of formatTiles(result.tiles)) print(line);
    const timing =
      result.timing === 'timestamp'
        ? `GPU timestamp queries${result.timestampsQuantized ? ` (quantised by Dawn to 65.5 µs; each sample repeats the call to last ≥ ${config.sampleTargetMs} ms)` : ''}, each sample behind a heater kernel that keeps the GPU busy while the host records it`
        : 'wall clock around the calls and device.sync()';
    print(`timing: ${timing}; median of ${config.iterations} samples after ${config.warmup} warm-up call(s)`);
    const errors = result.records.filter((record) => record.status.startsWith('error'));
    if (errors.length > 0) print(`${errors.length} record(s) failed with an error (see the rows marked "error:")`);
    return {
      ok: errors.length === 0,
      device: report,
      timing: { method: result.timing, timestampsQuantized: result.timestampsQuantized, warmup: config.warmup, iterations: config.iterations },
      config: {
        shapes: config.shapes,
        dtypes: config.dtypes,
        options: config.optionSets.map((set) => set.name),
        backends: config.backends,
        mathBudgetBytes: config.mathBudgetBytes ?? null,
      },
      tiles: result.tiles,
      tunings,
      records: result.records,
    };
  },
};
