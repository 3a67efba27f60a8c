import { describe, expect, it } from 'vitest';
import { parseArgs, usage } from './args';
import { COMMANDS, findCommand } from './commands/index';

describe('bench CLI arguments', () => {
  it('separates the command, global options and the command arguments', () => {
    expect(parseArgs(['info', '--json', 'out.json', '--size', '3,4,5'])).toEqual({
      command: 'info',
      json: 'out.json',
      cpu: false,
      noRobustness: false,
      help: false,
      rest: ['--size', '3,4,5'],
    });
    expect(parseArgs(['--cpu', '--json=x.json', 'info'])).toMatchObject({ command: 'info', json: 'x.json', cpu: true });
    expect(parseArgs(['kernel', '--no-robustness', '--quick'])).toMatchObject({ command: 'kernel', noRobustness: true, rest: ['--quick'] });
  });

  it('rejects --json without a file name', () => {
    expect(() => parseArgs(['info', '--json'])).toThrow(/--json needs a file name/);
    expect(() => parseArgs(['info', '--json', '--cpu'])).toThrow(/--json needs a file name/);
  });

  it('lists every registered command in --help, and finds each by name', () => {
    const text = usage();
    for (const command of COMMANDS) {
      expect(text).toContain(command.name);
      expect(findCommand(command.name)).toBe(command);
    }
    expect(findCommand('no-such-command')).toBeUndefined();
  });
});
