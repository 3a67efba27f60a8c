#!/usr/bin/env bash
# Prepares .gpu/ for the GPU machine (NVIDIA H100/H200; see ../shared/gpu/README.md): runs shared/gpu/pack.sh
# (node binary, Dawn's webgpu package, Vulkan loader), then bundles a tools/bench entry into .gpu/<name>.mjs.
# Afterwards, on the GPU machine (device tool, carry: [".gpu"]):
#   bash .gpu/remote.sh node .gpu/bench.mjs info --json $OUT/info.json
# Usage: bash scripts/gpu-bundle.sh [ENTRY] [NAME]   (default: tools/bench/src/cli.ts, bench)
set -euo pipefail
cd "$(dirname "$0")/.."
entry=${1:-tools/bench/src/cli.ts}
name=${2:-bench}
shared=${WEBATTN_SHARED:-../shared}
[ -f "$shared/gpu/pack.sh" ] || { echo "gpu-bundle: no $shared/gpu/pack.sh (set WEBATTN_SHARED to the shared folder)" >&2; exit 1; }
[ -d tools/bench/node_modules ] || pnpm install --frozen-lockfile
bash "$shared/gpu/pack.sh" "$PWD"
node tools/bench/scripts/bundle.mjs "$entry" ".gpu/$name.mjs"
echo "gpu-bundle: .gpu is $(du -sh .gpu | cut -f1) (the device tool carries at most 64 MiB)"
echo "run there: bash .gpu/remote.sh node .gpu/$name.mjs info"
