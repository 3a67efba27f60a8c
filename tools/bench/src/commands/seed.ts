import { tuneFlashBackward, tuneFlashForward } from '@webattn/flash';
import type { Command } from '../command';
import { formatBackwardTunings, formatTunings } from '../kernel/kernel-table';
import { progressBar } from '../seed/progress-bar';
import { runSeed } from '../seed/run-seed';
import { SEED_USAGE, parseSeedArgs } from '../seed/seed-args';
import { formatSeedTable } from '../seed/seed-table';

/**
 * `seed`: the seed's mini-test — a batch-32, length-500, width-128 (8 heads) model trained for 100 steps with four
 * attention variants under six option sets; prints ms/step, the ratio to naive and the backend the dispatch log
 * recorded. On a software adapter or the CPU it runs a reduced size unless --size seed; --steps/--batch/--seq
 * override single numbers (CI runs a tiny version). On a hardware GPU flash's forward is autotuned first.
 */
export const seedCommand: Command = {
  name: 'seed',
  summary: 'seed mini-test: train a B32 L500 E128 H8 model 100 steps with naive / MHA / SDPA / flash attention',
  usage: SEED_USAGE,
  async run({ device, args, print }) {
    const softwareAdapter = !device.isGpu || /llvmpipe|lavapipe|swiftshader|software/i.test(device.info.adapter);
    const { config, sizeNote, variants, optionSets } = parseSeedArgs(args, { softwareAdapter });
    const deviceName = device.isGpu ? device.info.adapter : `CPU (${device.info.reason})`;
    print(`seed mini-test: ${sizeNote} — batch ${config.batch}, sequence ${config.seq}, embedding ${config.embed}, ${config.heads} heads, ${config.steps} steps`);
    // On a hardware GPU, autotune flash's forward for this head dim first, then its tiled backward (seconds there; on
    // a software adapter every candidate's pipeline compile would take longer than the run).
    const tuning = { dtypes: ['f32'] as const, headDims: [config.embed / config.heads], shape: [config.batch, config.heads, config.seq] as const };
    const tunings = softwareAdapter ? { forward: [], backward: [] } : { forward: await tuneFlashForward(device, tuning), backward: await tuneFlashBackward(device, tuning) };
    for (const line of [...formatTunings(tunings.forward), ...formatBackwardTunings(tunings.backward)]) print(line);
    const results = await runSeed(device, config, variants, optionSets, progressBar(variants.length * optionSets.length * (config.steps + 1)));
    for (const line of formatSeedTable(results, config, deviceName)) print(line);
    // Flash forced on a device without flash (the CPU) is expected to fail; any other failure is a real one.
    const unexpected = results.filter((r) => r.error && !(r.variant === 'flash' && !device.isGpu));
    return { ok: unexpected.length === 0, device: deviceName, config, tunings, results };
  },
};
