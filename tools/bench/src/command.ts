import type { Device } from '@webattn/tensor';

/** What every command gets: the opened device, its own arguments, and a printer for human-readable lines. */
export interface CommandContext {
  readonly device: Device;
  /** The arguments after the command name, global options (--json, --cpu) removed. */
  readonly args: readonly string[];
  /** Prints one line for a person (results for machines go in the returned record). */
  print(line?: string): void;
}

/**
 * One CLI command, registered in commands/index.ts. `run` returns a JSON-serialisable record, written to the
 * file given with --json; a thrown error or a record with `ok: false` makes the CLI exit non-zero.
 */
export interface Command {
  readonly name: string;
  /** One line for `--help`. */
  readonly summary: string;
  /** Command-specific usage shown by `--help`, e.g. "[--size N]". */
  readonly usage?: string;
  run(context: CommandContext): Promise<Record<string, unknown> & { ok: boolean }>;
}
