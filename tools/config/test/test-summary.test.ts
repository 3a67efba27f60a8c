// scripts/test-summary.mjs decides whether CI is green, so its counting is tested on made-up workspaces.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';

const script = fileURLToPath(new URL('../../../scripts/test-summary.mjs', import.meta.url));
const roots: string[] = [];
afterEach(() => {
  for (const root of roots.splice(0)) rmSync(root, { recursive: true, force: true });
});

interface FakePackage {
  readonly name: string;
  readonly test?: boolean;
  readonly report?: unknown;
}

function workspace(packages: readonly FakePackage[]): string {
  const root = mkdtempSync(path.join(tmpdir(), 'webattn-summary-'));
  roots.push(root);
  writeFileSync(path.join(root, 'pnpm-workspace.yaml'), "packages:\n  - packages/*\n  - 'tools/*'\nonlyBuiltDependencies:\n  - esbuild\n");
  for (const fake of packages) {
    const folder = path.join(root, 'packages', fake.name);
    mkdirSync(folder, { recursive: true });
    const scripts = fake.test === false ? {} : { test: 'vitest run' };
    writeFileSync(path.join(folder, 'package.json'), JSON.stringify({ name: `@fake/${fake.name}`, scripts }));
    if (fake.report !== undefined) writeFileSync(path.join(folder, 'test-results.json'), JSON.stringify(fake.report));
  }
  return root;
}

function summarise(root: string, ...extra: string[]) {
  const run = spawnSync(process.execPath, [script, '--root', root, ...extra], { encoding: 'utf8' });
  const lines = run.stdout.trim().split('\n');
  return { status: run.status, lines, last: lines[lines.length - 1] };
}

const passing = (passed: number, skipped = 0) => ({
  numPassedTests: passed,
  numFailedTests: 0,
  numPendingTests: skipped,
  numTodoTests: 0,
  success: true,
  testResults: [{ name: '/x/a.test.ts', status: 'passed', assertionResults: [] }],
});

describe('scripts/test-summary.mjs', () => {
  it('sums passing reports and exits 0, with the count as its last line', () => {
    const root = workspace([
      { name: 'one', report: passing(3) },
      { name: 'two', report: passing(4, 2) },
      { name: 'no-tests-script', test: false },
    ]);
    const result = summarise(root);
    expect(result.last).toBe('tests: 7 passed, 0 failed');
    expect(result.status).toBe(0);
    expect(result.lines.join('\n')).not.toContain('no-tests-script');
  });

  it('counts a package whose tests left no report as a failure', () => {
    const root = workspace([{ name: 'one', report: passing(3) }, { name: 'crashed' }]);
    const result = summarise(root);
    expect(result.last).toBe('tests: 3 passed, 1 failed');
    expect(result.status).toBe(1);
    expect(result.lines.join('\n')).toMatch(/@fake\/crashed: 0 passed, 1 failed\n\s+no test-results.json/);
  });

  it('counts failed tests, files that failed to load, and errors outside tests', () => {
    const root = workspace([
      {
        name: 'failing',
        report: {
          numPassedTests: 2,
          numFailedTests: 1,
          success: false,
          testResults: [
            { name: '/x/a.test.ts', status: 'failed', assertionResults: [{ status: 'failed' }, { status: 'passed' }] },
            { name: '/x/b.test.ts', status: 'failed', message: 'Error: boom at import\n  at stack', assertionResults: [] },
          ],
        },
      },
      { name: 'unhandled', report: { ...passing(1), success: false } },
      { name: 'garbled', report: undefined },
    ]);
    writeFileSync(path.join(root, 'packages', 'garbled', 'test-results.json'), '{ not json');
    const result = summarise(root);
    expect(result.last).toBe('tests: 3 passed, 4 failed');
    expect(result.lines.join('\n')).toContain('boom at import');
    expect(result.status).toBe(1);
  });

  it('counts each --failed-step as one failure', () => {
    const root = workspace([{ name: 'one', report: passing(5) }]);
    const result = summarise(root, '--failed-step', 'build', '--failed-step', 'typecheck');
    expect(result.last).toBe('tests: 5 passed, 2 failed');
    expect(result.status).toBe(1);
  });

  it('--clean deletes the reports so none can be stale', () => {
    const root = workspace([{ name: 'one', report: passing(5) }]);
    expect(summarise(root, '--clean').status).toBe(0);
    expect(existsSync(path.join(root, 'packages', 'one', 'test-results.json'))).toBe(false);
    expect(summarise(root).last).toBe('tests: 0 passed, 1 failed');
  });
});
