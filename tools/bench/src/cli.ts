#!/usr/bin/env node
// webattn bench CLI: `pnpm bench <command> [--json FILE] [--cpu]` (see --help). Commands live in commands/.
import { main } from './main';

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    console.error(error instanceof Error ? (error.stack ?? error.message) : String(error));
    process.exitCode = 1;
  },
);
