/**
 * `changeset version` as a dry run: on a copy of the repository's tracked files (the working tree is never
 * touched) it must succeed, bump every package named by a pending changeset by its declared bump, consume the
 * changeset files and write the CHANGELOG entries.
 */
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const copy = mkdtempSync(join(tmpdir(), 'webattn-changeset-'));
afterAll(() => rmSync(copy, { recursive: true, force: true }));

type Bump = 'major' | 'minor' | 'patch';
const ORDER: Bump[] = ['patch', 'minor', 'major'];

/** The pending bump of each package: the largest any changeset declares. */
function pendingBumps(folder: string): Map<string, Bump> {
  const bumps = new Map<string, Bump>();
  for (const file of readdirSync(folder).filter((name) => name.endsWith('.md') && name !== 'README.md')) {
    const front = /^---\n([\s\S]*?)\n---/.exec(readFileSync(join(folder, file), 'utf8'))?.[1] ?? '';
    for (const line of front.split('\n')) {
      const match = /^['"]?([^'":]+)['"]?\s*:\s*(major|minor|patch)\s*$/.exec(line.trim());
      if (!match) continue;
      const [, name, bump] = match as unknown as [string, string, Bump];
      const previous = bumps.get(name);
      if (!previous || ORDER.indexOf(bump) > ORDER.indexOf(previous)) bumps.set(name, bump);
    }
  }
  return bumps;
}

function bumped(version: string, bump: Bump): string {
  const [major, minor, patch] = version.split('.').map(Number) as [number, number, number];
  if (bump === 'major') return `${major + 1}.0.0`;
  if (bump === 'minor') return `${major}.${minor + 1}.0`;
  return `${major}.${minor}.${patch + 1}`;
}

describe('changeset version (dry run on a copy)', () => {
  it('bumps each package by its pending changesets and writes the changelogs', () => {
    const tracked = execFileSync('git', ['ls-files', '-z'], { cwd: repo, encoding: 'utf8' }).split('\0').filter(Boolean);
    for (const file of tracked) {
      if (!existsSync(join(repo, file))) continue; // deleted in the working tree
      mkdirSync(dirname(join(copy, file)), { recursive: true });
      cpSync(join(repo, file), join(copy, file));
    }
    const bumps = pendingBumps(join(copy, '.changeset'));
    const manifests = readdirSync(join(copy, 'packages')).map((dir) => join(copy, 'packages', dir, 'package.json'));
    const before = new Map(
      manifests.map((path) => {
        const manifest = JSON.parse(readFileSync(path, 'utf8')) as { name: string; version: string };
        return [manifest.name, { path, version: manifest.version }];
      }),
    );
    const changeset = join(repo, 'node_modules', '.bin', 'changeset');
    execFileSync(changeset, ['version'], { cwd: copy, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

    for (const [name, { path, version }] of before) {
      const after = JSON.parse(readFileSync(path, 'utf8')) as { version: string; dependencies?: Record<string, string> };
      const bump = bumps.get(name);
      if (bump) {
        expect(after.version, name).toBe(bumped(version, bump));
        expect(readFileSync(join(dirname(path), 'CHANGELOG.md'), 'utf8'), `${name} CHANGELOG`).toContain(`## ${after.version}`);
      }
      // Internal dependencies keep their workspace: protocol (pnpm pack rewrites them at publish time).
      for (const [dependency, range] of Object.entries(after.dependencies ?? {})) {
        if (dependency.startsWith('@webattn/')) expect(range, `${name} → ${dependency}`).toMatch(/^workspace:/);
      }
    }
    const left = readdirSync(join(copy, '.changeset')).filter((name) => name.endsWith('.md') && name !== 'README.md');
    expect(left, 'changeset files left after version').toEqual([]);
  }, 120_000);
});
