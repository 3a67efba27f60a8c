#!/usr/bin/env bash
# Sets up a fresh machine and runs every check: system packages, pnpm install, build, typecheck, lint and all
# tests on real WebGPU (Dawn on Mesa lavapipe in Node, SwiftShader in headless Chromium).
# The last line it prints is `tests: N passed, N failed` (scripts/test-summary.mjs); a failed build, typecheck or
# lint step counts as one failure there. Exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."

export TURBO_TELEMETRY_DISABLED=1 DO_NOT_TRACK=1 TURBO_NO_UPDATE_NOTIFIER=1
export WEBATTN_REQUIRE_GPU=1
# Dawn's Vulkan loader and Chromium want a runtime directory; a fresh private one if the session has none.
if [ -z "${XDG_RUNTIME_DIR:-}" ] || [ ! -d "$XDG_RUNTIME_DIR" ]; then
  export XDG_RUNTIME_DIR="/tmp/webattn-xdg-$(id -u)"
  mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
fi

started=$(date +%s)
failed_steps=()
step() {
  local name=$1; shift
  echo "== $name: $*  ($(($(date +%s) - started)) s)"
  if ! "$@"; then
    echo "== $name FAILED"
    failed_steps+=("$name")
  fi
}
give_up() {
  echo "== $1 FAILED: cannot run the tests"
  echo "tests: 0 passed, 1 failed"
  exit 1
}

echo "== setup: bash scripts/setup-system.sh"
bash scripts/setup-system.sh || give_up "system setup"
echo "== install: pnpm install --frozen-lockfile  ($(($(date +%s) - started)) s)"
pnpm install --frozen-lockfile --reporter=append-only || give_up "pnpm install"

# --continue: one package's failure must not hide the others' errors.
step build pnpm exec turbo run build --continue
step typecheck pnpm exec turbo run typecheck --continue
lint() {
  pnpm exec turbo run lint --continue
  local status=$?
  node scripts/check-package-types.mjs && return "$status"
}
step lint lint

echo "== test: every package's vitest suite, one package at a time  ($(($(date +%s) - started)) s)"
node scripts/test-summary.mjs --clean
pnpm exec turbo run test --continue --concurrency=1
turbo_status=$?
echo "== tests finished ($(($(date +%s) - started)) s; turbo exit status $turbo_status)"

summary_args=()
for name in "${failed_steps[@]}"; do summary_args+=(--failed-step "$name"); done
node scripts/test-summary.mjs "${summary_args[@]}"
summary_status=$?
if [ "$summary_status" -eq 0 ] && [ "$turbo_status" -ne 0 ]; then
  # Every report passed but turbo did not: say so in the count rather than pass quietly.
  node scripts/test-summary.mjs "${summary_args[@]}" --failed-step "turbo run test (exit $turbo_status)"
  summary_status=1
fi
exit "$summary_status"
