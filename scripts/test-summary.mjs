#!/usr/bin/env node
// Sums every workspace package's vitest JSON report (test-results.json, written by the reporters configured in
// tools/config/vitest-preset.js) and prints `tests: N passed, N failed` as its last line.
//
// A package with a "test" script but no report (its tests crashed, or vitest never ran) counts as one failure,
// as does a test file that failed to load and a run that reported errors outside any test. Exits 1 on any failure.
//
//   node scripts/test-summary.mjs           summarise
//   node scripts/test-summary.mjs --clean   delete the reports first (run before the tests, so none is stale)
//   --failed-step NAME                      count a failed step of scripts/test.sh (build, typecheck...) as a failure
//   --root DIR                              the workspace root (default: this script's repository)
import { existsSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const rootArgument = process.argv.indexOf('--root');
const root =
  rootArgument >= 0 ? path.resolve(process.argv[rootArgument + 1]) : path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const REPORT = 'test-results.json';

/** Package folders from pnpm-workspace.yaml's `packages:` globs (only the `dir/*` and `dir` forms are used here). */
function workspacePackages() {
  const yaml = readFileSync(path.join(root, 'pnpm-workspace.yaml'), 'utf8');
  const globs = [];
  let inPackages = false;
  for (const line of yaml.split('\n')) {
    if (/^packages:\s*$/.test(line)) inPackages = true;
    else if (/^\S/.test(line)) inPackages = false;
    else if (inPackages) {
      const match = line.match(/^\s*-\s*['"]?([^'"#]+?)['"]?\s*$/);
      if (match) globs.push(match[1]);
    }
  }
  const folders = [];
  for (const glob of globs) {
    if (glob.endsWith('/*')) {
      const parent = path.join(root, glob.slice(0, -2));
      if (!existsSync(parent)) continue;
      for (const entry of readdirSync(parent, { withFileTypes: true })) {
        if (entry.isDirectory()) folders.push(path.join(parent, entry.name));
      }
    } else folders.push(path.join(root, glob));
  }
  return folders
    .filter((folder) => existsSync(path.join(folder, 'package.json')))
    .map((folder) => ({ folder, manifest: JSON.parse(readFileSync(path.join(folder, 'package.json'), 'utf8')) }))
    .filter(({ manifest }) => typeof manifest.scripts?.test === 'string')
    .sort((a, b) => a.manifest.name.localeCompare(b.manifest.name));
}

/** Counts of one package's report. */
function summarise(report) {
  let passed = report.numPassedTests ?? 0;
  let failed = report.numFailedTests ?? 0;
  const skipped = (report.numPendingTests ?? 0) + (report.numTodoTests ?? 0);
  const notes = [];
  for (const file of report.testResults ?? []) {
    const failedInFile = (file.assertionResults ?? []).filter((test) => test.status === 'failed').length;
    if (file.status === 'failed' && failedInFile === 0) {
      failed += 1; // the file itself failed: import error, top-level throw, hook failure
      notes.push(`${path.relative(root, file.name)}: ${(file.message ?? 'failed to run').split('\n')[0]}`);
    }
  }
  if (report.success === false && failed === 0) {
    failed += 1;
    notes.push('vitest reported failure outside any test (unhandled error?)');
  }
  return { passed, failed, skipped, notes };
}

const packages = workspacePackages();
if (process.argv.includes('--clean')) {
  for (const { folder } of packages) rmSync(path.join(folder, REPORT), { force: true });
  process.exit(0);
}

const total = { passed: 0, failed: 0, skipped: 0 };
console.log('\ntest summary (vitest reports per package):');
for (const { folder, manifest } of packages) {
  const file = path.join(folder, REPORT);
  let counts;
  if (!existsSync(file)) {
    counts = { passed: 0, failed: 1, skipped: 0, notes: [`no ${REPORT}: its tests crashed or did not run`] };
  } else {
    try {
      counts = summarise(JSON.parse(readFileSync(file, 'utf8')));
    } catch (error) {
      counts = { passed: 0, failed: 1, skipped: 0, notes: [`unreadable ${REPORT}: ${error.message}`] };
    }
  }
  if (counts.passed + counts.failed + counts.skipped === 0) counts.notes.push('WARNING: no tests');
  total.passed += counts.passed;
  total.failed += counts.failed;
  total.skipped += counts.skipped;
  const skipped = counts.skipped ? `, ${counts.skipped} skipped` : '';
  console.log(`  ${manifest.name}: ${counts.passed} passed, ${counts.failed} failed${skipped}`);
  for (const note of counts.notes) console.log(`    ${note}`);
}
const args = process.argv.slice(2);
for (let index = 0; index < args.length; index++) {
  if (args[index] === '--failed-step') {
    total.failed += 1;
    console.log(`  step ${args[++index]}: failed (counted as 1 failure)`);
  }
}
if (total.skipped) console.log(`  (${total.skipped} skipped in all)`);
console.log(`tests: ${total.passed} passed, ${total.failed} failed`);
process.exit(total.failed > 0 ? 1 : 0);
