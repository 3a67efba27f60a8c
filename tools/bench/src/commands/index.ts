import type { Command } from '../command';
import { decodeCommand } from './decode';
import { infoCommand } from './info';
import { kernelCommand } from './kernel';
import { seedCommand } from './seed';

/** Every CLI command, in the order --help lists them. Add a command: write commands/<name>.ts, list it here. */
export const COMMANDS: readonly Command[] = [infoCommand, seedCommand, kernelCommand, decodeCommand];

export function findCommand(name: string): Command | undefined {
  return COMMANDS.find((command) => command.name === name);
}
