#!/usr/bin/env bash
# The main job on a fresh machine: system setup, install, then the bench CLI (for now `info`: the device, its
# capabilities and a matmul checked against float64; extra arguments go to the CLI, e.g. --json FILE).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-system.sh
pnpm install --frozen-lockfile --reporter=append-only
if [ -z "${XDG_RUNTIME_DIR:-}" ] || [ ! -d "$XDG_RUNTIME_DIR" ]; then
  export XDG_RUNTIME_DIR="/tmp/webattn-xdg-$(id -u)"
  mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
fi
pnpm bench info "$@"
