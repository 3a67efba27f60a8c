#!/usr/bin/env bash
# The main job on a fresh machine: system setup, install, then the seed mini-test (`pnpm bench seed`): a
# B32 L500 E128 H8 attention model trained 100 steps with naive / MultiheadAttention / SDPA / flash attention under
# six option sets, on whatever WebGPU adapter exists, else the CPU (software adapters and the CPU run a reduced size;
# --size seed forces the full one). Extra arguments go to the seed command, e.g. --steps 20 --json FILE.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-system.sh
pnpm install --frozen-lockfile --reporter=append-only
if [ -z "${XDG_RUNTIME_DIR:-}" ] || [ ! -d "$XDG_RUNTIME_DIR" ]; then
  export XDG_RUNTIME_DIR="/tmp/webattn-xdg-$(id -u)"
  mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
fi
pnpm bench info
pnpm bench seed "$@"
