import type { Command } from '../command';
import { describeDevice, formatDeviceReport } from '../device-report';
import { checkMatmul } from '../matmul-check';

/** `info`: the device and what it can do, then a small matmul checked against float64 on the CPU. */
export const infoCommand: Command = {
  name: 'info',
  summary: 'print the device (adapter, features, subgroups, subgroup matrices, limits) and run a checked matmul',
  usage: '[--size M,K,N]',
  async run({ device, args, print }) {
    const sizeIndex = args.indexOf('--size');
    const sizes = sizeIndex >= 0 ? (args[sizeIndex + 1] ?? '').split(',').map(Number) : [67, 45, 33];
    if (sizes.length !== 3 || sizes.some((size) => !Number.isInteger(size) || size <= 0)) {
      throw new Error(`--size needs three positive integers M,K,N, got "${args[sizeIndex + 1] ?? ''}"`);
    }
    const [m, k, n] = sizes as [number, number, number];
    const report = describeDevice(device);
    for (const line of formatDeviceReport(report)) print(line);
    const matmul = await checkMatmul(device, m, k, n);
    print();
    print(
      `matmul check (${matmul.where}, f32 ${m}x${k} @ ${k}x${n}, seed ${matmul.seed}): max abs error ${matmul.maxAbsError.toExponential(2)}` +
        ` vs float64 (tolerance ${matmul.tolerance.toExponential(2)}) — ${matmul.ok ? 'ok' : 'FAILED'}`,
    );
    return { ok: matmul.ok, device: report, matmul };
  },
};
