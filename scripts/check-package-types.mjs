#!/usr/bin/env node
// Runs `attw --pack --profile esm-only` (@arethetypeswrong/cli) on every published workspace package: packs it
// as npm would and checks that each export's types resolve for Node 16+ ESM and bundlers. CommonJS and node10
// resolution are ignored: the packages are ESM-only on purpose. Needs `pnpm build` first (it packs dist/).
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const attw = path.join(root, 'node_modules', '.bin', 'attw');
let failures = 0;
for (const parent of ['packages']) {
  for (const entry of readdirSync(path.join(root, parent), { withFileTypes: true })) {
    const folder = path.join(root, parent, entry.name);
    const manifestFile = path.join(folder, 'package.json');
    if (!entry.isDirectory() || !existsSync(manifestFile)) continue;
    const manifest = JSON.parse(readFileSync(manifestFile, 'utf8'));
    if (manifest.private) continue;
    const run = spawnSync(attw, ['--pack', '.', '--profile', 'esm-only', '--format', 'table'], {
      cwd: folder,
      encoding: 'utf8',
    });
    const ok = run.status === 0;
    console.log(`attw ${manifest.name}: ${ok ? 'ok' : 'FAILED'}`);
    if (!ok) {
      failures++;
      console.log(`${run.stdout}${run.stderr}`);
    }
  }
}
process.exit(failures > 0 ? 1 : 0);
