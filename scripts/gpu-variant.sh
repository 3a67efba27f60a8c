#!/usr/bin/env bash
# Bundles the bench CLI and flash's GPU conformance check (packages/flash/scripts/gpu-check.ts) of one git revision,
# or of the working tree ("."), into .gpu/bench-NAME.mjs and .gpu/flash-check-NAME.mjs, so that variants run side
# by side in one device call (bench notes: "variants bundled from their own trees"). E.g.
#   bash scripts/gpu-bundle.sh                      # once: node, Dawn and the Vulkan loader into .gpu/
#   bash scripts/gpu-variant.sh main base && bash scripts/gpu-variant.sh . new
#   (device tool, carry [".gpu"]) bash .gpu/remote.sh bash -c 'for v in base new; do node .gpu/bench-$v.mjs kernel --shape 32,8,500,16; done'
# A revision is unpacked into a temporary tree that borrows this checkout's installed packages (the root
# node_modules linked, each workspace package's own links copied, so workspace imports resolve inside the revision).
# Usage: bash scripts/gpu-variant.sh REVISION|. NAME
set -euo pipefail
cd "$(dirname "$0")/.."
usage='usage: bash scripts/gpu-variant.sh REVISION|. NAME (NAME: letters, digits, - and _)'
ref=${1:?$usage}
name=${2:?$usage}
[[ $name =~ ^[A-Za-z0-9_-]+$ ]] || { echo "gpu-variant: bad NAME \"$name\"; $usage" >&2; exit 1; }
root=$PWD
[ -d "$root/node_modules" ] || { echo "gpu-variant: no node_modules here; run pnpm install --frozen-lockfile first" >&2; exit 1; }
mkdir -p "$root/.gpu"
tree=$root
if [ "$ref" != . ]; then
  git rev-parse --verify --quiet "$ref^{commit}" > /dev/null || { echo "gpu-variant: \"$ref\" is not a revision here; $usage" >&2; exit 1; }
  tree=$(mktemp -d "${TMPDIR:-/tmp}/webattn-variant-XXXXXX")
  trap 'rm -rf "$tree"' EXIT
  git archive "$ref" | tar -x -C "$tree"
  ln -s "$root/node_modules" "$tree/node_modules"
  for modules in "$root"/{packages,apps,tools}/*/node_modules; do
    package=${modules%/node_modules}
    package=${package#"$root"/}
    [ -d "$tree/$package" ] && cp -a "$modules" "$tree/$package/"
  done
fi
node "$tree/tools/bench/scripts/bundle.mjs" "$tree/tools/bench/src/cli.ts" "$root/.gpu/bench-$name.mjs"
node "$tree/tools/bench/scripts/bundle.mjs" "$tree/packages/flash/scripts/gpu-check.ts" "$root/.gpu/flash-check-$name.mjs"
echo "gpu-variant: $ref -> .gpu/bench-$name.mjs, .gpu/flash-check-$name.mjs"
