#!/usr/bin/env bash
# Installs what the tests need beyond Node: pnpm, Mesa's lavapipe (Vulkan on the CPU, >= 24, from
# bookworm-backports) for Dawn in Node, and Debian's Chromium for the browser tests.
# Idempotent: each step is skipped when already done. Needs root (or sudo) for apt.
set -euo pipefail
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"

if ! command -v pnpm >/dev/null 2>&1; then
  echo "setup: installing pnpm"
  npm install -g pnpm@10.24.0 >/dev/null
fi

need_apt=()
lavapipe_ok() { ls /usr/share/vulkan/icd.d/lvp_icd*.json >/dev/null 2>&1 && dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null | grep -qE '^(2[4-9]|[3-9][0-9])\.'; }
lavapipe_ok || need_apt+=(mesa)
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)

if [ ${#need_apt[@]} -gt 0 ] && command -v apt-get >/dev/null 2>&1; then
  if [[ " ${need_apt[*]} " == *" mesa "* ]] && ! grep -rqs 'bookworm-backports' /etc/apt/sources.list.d/; then
    # Copy the machine's own Debian mirror (its URIs: line) into a backports source; no host is named here.
    uris=$(grep -m1 '^URIs:' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
    [ -n "$uris" ] || uris=$(awk '/^deb /{print "URIs: " $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
    printf 'Types: deb\n%s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$uris" \
      | $SUDO tee /etc/apt/sources.list.d/webattn-backports.sources >/dev/null
  fi
  echo "setup: apt-get update"
  $SUDO apt-get update -qq >/dev/null
  export DEBIAN_FRONTEND=noninteractive
  if [[ " ${need_apt[*]} " == *" mesa "* ]]; then
    echo "setup: installing Mesa lavapipe from bookworm-backports"
    $SUDO apt-get install -y -qq -t bookworm-backports mesa-vulkan-drivers libvulkan1 >/dev/null
  fi
  if [[ " ${need_apt[*]} " == *" chromium "* ]]; then
    echo "setup: installing Debian chromium"
    $SUDO apt-get install -y -qq chromium >/dev/null
  fi
fi
echo "setup: system ready (pnpm $(pnpm --version 2>/dev/null || echo missing), mesa $(dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null || echo missing), $(chromium --version 2>/dev/null || echo 'chromium missing'))"
