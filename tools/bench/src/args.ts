import { COMMANDS } from './commands/index';

export interface ParsedArgs {
  readonly command: string | undefined;
  readonly json: string | undefined;
  readonly cpu: boolean;
  /** Dawn's disable_robustness toggle (Node only): for comparisons; browsers always run with robustness. */
  readonly noRobustness: boolean;
  readonly help: boolean;
  readonly rest: readonly string[];
}

/** Splits the global options (--json FILE, --cpu, --no-robustness, --help) from the command name and its own arguments. */
export function parseArgs(argv: readonly string[]): ParsedArgs {
  let command: string | undefined;
  let json: string | undefined;
  let cpu = false;
  let noRobustness = false;
  let help = false;
  const rest: string[] = [];
  for (let index = 0; index < argv.length; index++) {
    const arg = argv[index]!;
    if (arg === '--json') {
      json = argv[++index];
      if (!json || json.startsWith('--')) throw new Error('--json needs a file name');
    } else if (arg.startsWith('--json=')) json = arg.slice('--json='.length);
    else if (arg === '--cpu') cpu = true;
    else if (arg === '--no-robustness') noRobustness = true;
    else if (arg === '--help' || arg === '-h') help = true;
    else if (command === undefined && !arg.startsWith('-')) command = arg;
    else rest.push(arg);
  }
  return { command, json, cpu, noRobustness, help, rest };
}

export function usage(): string {
  const width = Math.max(...COMMANDS.map((command) => command.name.length));
  return [
    'usage: pnpm bench <command> [options] [--json FILE] [--cpu] [--no-robustness]',
    '',
    'commands:',
    ...COMMANDS.map((command) => `  ${command.name.padEnd(width)}  ${command.summary}${command.usage ? `\n  ${''.padEnd(width)}  options: ${command.usage}` : ''}`),
    '',
    'global options:',
    '  --json FILE  also write the result record as JSON to FILE',
    '  --cpu        use the CPU device even when a WebGPU adapter exists',
    "  --no-robustness  Dawn's disable_robustness toggle (Node): bounds checks off, for comparison only; browsers keep them",
  ].join('\n');
}
