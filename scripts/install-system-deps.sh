#!/usr/bin/env bash
# Installs the Debian packages the test suite needs. Root only; prints what to do otherwise.
set -euo pipefail
missing=()
command -v chromium >/dev/null || missing+=(chromium)
if [ ${#missing[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" != 0 ]; then
  echo "install-system-deps: not root; install these Debian packages yourself: ${missing[*]}" >&2
  exit 0
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
