import { writeFile } from 'node:fs/promises';
import { DEFAULT_DAWN_FEATURES, createDevice } from '@webattn/tensor';
import { parseArgs, usage } from './args';
import { findCommand } from './commands/index';

/** Runs one CLI invocation; returns the process exit code (0 ok, 1 failed check, 2 usage error). */
export async function main(argv: readonly string[]): Promise<number> {
  const args = parseArgs(argv);
  if (args.help || args.command === undefined) {
    console.log(usage());
    return args.help ? 0 : 2;
  }
  const command = findCommand(args.command);
  if (!command) {
    console.error(`unknown command "${args.command}"\n\n${usage()}`);
    return 2;
  }
  const device = await createDevice(
    args.cpu ? { prefer: 'cpu' } : args.noRobustness ? { dawnFeatures: [...DEFAULT_DAWN_FEATURES, 'disable_robustness'] } : {},
  );
  const robustness = args.noRobustness ? 'disabled (Dawn disable_robustness; not what browsers run)' : 'default';
  if (args.noRobustness) console.log(`robustness: ${robustness}`);
  try {
    const record = await command.run({ device, args: args.rest, print: (line = '') => console.log(line) });
    if (args.json) {
      await writeFile(args.json, `${JSON.stringify({ command: command.name, robustness, ...record }, null, 2)}\n`);
      console.log(`wrote ${args.json}`);
    }
    return record.ok ? 0 : 1;
  } finally {
    device.destroy();
  }
}
