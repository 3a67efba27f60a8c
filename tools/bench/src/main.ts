import { writeFile } from 'node:fs/promises';
import { createDevice } from '@webattn/tensor';
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
  const device = await createDevice(args.cpu ? { prefer: 'cpu' } : {});
  try {
    const record = await command.run({ device, args: args.rest, print: (line = '') => console.log(line) });
    if (args.json) {
      await writeFile(args.json, `${JSON.stringify({ command: command.name, ...record }, null, 2)}\n`);
      console.log(`wrote ${args.json}`);
    }
    return record.ok ? 0 : 1;
  } finally {
    device.destroy();
  }
}
