#!/usr/bin/env bash
# System tools the test suite needs, on Debian bookworm (called by `make test`):
#   chromium         Debian's Chromium, for the PWA browser tests (/usr/bin/chromium)
#   openssl          makes the throwaway certificate of the HTTPS tests
#   node             runs the front end's unit tests (node --test tests/js/; package nodejs)
#   npm              installs the pinned LiteRT.js and esbuild that `make web` bundles into
#                    pwa/static/vendor/ (package npm; Node 18 or newer)
#   mmdebstrap       builds the extract-only arm64 sysroot for the Raspberry Pi emulation
#   systemd-analyze  verifies the Pi's systemd units (package systemd; normally present)
#   ShellCheck       lints the Pi installer and this script (package shellcheck)
#   qemu-aarch64     qemu-user 10.x from bookworm-backports, unpacked into the tests' cache
#                    (~/.cache/lesionlite/pi/qemu, shared by every clone) and
#                    never installed system-wide (bookworm's own qemu 7.2 segfaults in
#                    ai-edge-litert >= 2.2; no binfmt handler is registered either way)
# As root it installs what is missing; as anyone else it prints what to install and exits 0, so
# the tests can skip with a reason. Idempotent: when everything is present it touches neither apt
# nor the network. One line per step.
set -euo pipefail

# The tests' cache, shared by every clone on the machine (tests/shared_cache.py says the same).
CACHE=${LESIONLITE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/lesionlite}
QEMU_DIR=${LESIONLITE_QEMU_DIR:-$CACHE/pi/qemu}
QEMU_BIN=$QEMU_DIR/usr/bin/qemu-aarch64
QEMU_MIN_MAJOR=10
SUITE=bookworm
BACKPORTS=$SUITE-backports
# Wait for another apt/dpkg (e.g. a parallel job) instead of failing on its lock.
APT=(apt-get -q -o DPkg::Lock::Timeout=600)
export DEBIAN_FRONTEND=noninteractive

say() { echo "install-system-deps: $*"; }

qemu_version() {  # prints e.g. 10.0.2, or nothing
  [ -x "$QEMU_BIN" ] || return 0
  "$QEMU_BIN" --version 2>/dev/null | sed -nE '1s/^qemu-aarch64 version ([0-9]+(\.[0-9]+)*).*/\1/p'
}

# --- 1. what is there -------------------------------------------------------------------------
pkgs=()
qemu_needed=0
if [ -x /usr/bin/chromium ]; then say "chromium: ok (/usr/bin/chromium)"
else say "chromium: missing"; pkgs+=(chromium); fi
if command -v openssl >/dev/null; then say "openssl: ok ($(command -v openssl))"
else say "openssl: missing"; pkgs+=(openssl); fi
if command -v node >/dev/null; then say "node: ok ($(command -v node))"
else say "node: missing"; pkgs+=(nodejs); fi
if command -v npm >/dev/null; then say "npm: ok ($(command -v npm))"
else say "npm: missing"; pkgs+=(npm); fi
if command -v mmdebstrap >/dev/null; then say "mmdebstrap: ok ($(command -v mmdebstrap))"
else say "mmdebstrap: missing"; pkgs+=(mmdebstrap); fi
if command -v systemd-analyze >/dev/null; then say "systemd-analyze: ok ($(command -v systemd-analyze))"
else say "systemd-analyze: missing"; pkgs+=(systemd); fi
if command -v shellcheck >/dev/null; then say "shellcheck: ok ($(command -v shellcheck))"
else say "shellcheck: missing"; pkgs+=(shellcheck); fi
qv=$(qemu_version)
if [ -n "$qv" ] && [ "${qv%%.*}" -ge "$QEMU_MIN_MAJOR" ]; then say "qemu-aarch64: ok ($qv, $QEMU_BIN)"
else say "qemu-aarch64: missing (need >= $QEMU_MIN_MAJOR from $BACKPORTS in $QEMU_BIN; found '${qv:-none}')"
     qemu_needed=1; fi

if [ ${#pkgs[@]} -eq 0 ] && [ $qemu_needed -eq 0 ]; then
  say "all present"
  exit 0
fi

if [ "$(id -u)" != 0 ]; then
  if [ ${#pkgs[@]} -gt 0 ]; then say "not root; as root run: apt-get install ${pkgs[*]}"; fi
  if [ $qemu_needed -eq 1 ]; then
    say "not root; as root run: bash scripts/install-system-deps.sh" \
      "(adds $BACKPORTS and unpacks qemu-user into $QEMU_DIR)"
  fi
  say "not root: nothing installed; the tests that need these will be skipped"
  exit 0
fi

# --- 2. backports source (only for qemu) -----------------------------------------------------
# The mirror this machine already uses for bookworm: a deb822 .sources stanza or a one-line .list.
debian_mirror() {
  local f m
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    m=$(awk -v suite="$SUITE" 'BEGIN { RS = ""; FS = "\n" }
      { uris = ""; suites = ""; types = ""; enabled = "yes"
        for (i = 1; i <= NF; i++) {
          l = $i; if (l ~ /^[ \t]*#/) continue
          k = tolower(l); sub(/:.*/, "", k); v = l; sub(/^[^:]*:[ \t]*/, "", v)
          if (k == "uris") uris = v; else if (k == "suites") suites = " " v " "
          else if (k == "types") types = " " v " "; else if (k == "enabled") enabled = tolower(v)
        }
        if (enabled != "no" && types ~ / deb / && suites ~ (" " suite " ")) { split(uris, u, " "); print u[1]; exit }
      }' "$f")
    if [ -n "$m" ]; then echo "$m"; return; fi
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    m=$(sed -nE "s/^[[:space:]]*deb[[:space:]]+(\[[^]]*\][[:space:]]+)?([^[:space:]]+)[[:space:]]+${SUITE}[[:space:]].*/\2/p" "$f" | head -n1)
    if [ -n "$m" ]; then echo "$m"; return; fi
  done
  echo "http://deb.debian.org/debian"
}

has_backports_source() {
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    grep -qsE "^[^#]*[[:space:]]$BACKPORTS([[:space:]]|$)" "$f" && return 0
  done
  return 1
}

if [ $qemu_needed -eq 1 ]; then
  if has_backports_source; then
    say "$BACKPORTS source: ok (already configured)"
  else
    mirror=$(debian_mirror)
    keyring=/usr/share/keyrings/debian-archive-keyring.gpg
    if compgen -G "/etc/apt/sources.list.d/*.sources" >/dev/null; then
      dest=/etc/apt/sources.list.d/$BACKPORTS.sources
      {
        echo "Types: deb"; echo "URIs: $mirror"; echo "Suites: $BACKPORTS"; echo "Components: main"
        [ -f "$keyring" ] && echo "Signed-By: $keyring"
      } >"$dest"
    else
      dest=/etc/apt/sources.list.d/$BACKPORTS.list
      if [ -f "$keyring" ]; then echo "deb [signed-by=$keyring] $mirror $BACKPORTS main" >"$dest"
      else echo "deb $mirror $BACKPORTS main" >"$dest"; fi
    fi
    # Backports are NotAutomatic: nothing installed here switches to them unless asked with -t.
    say "$BACKPORTS source: added $dest ($mirror)"
  fi
fi

# --- 3. apt ----------------------------------------------------------------------------------
say "apt-get update"
"${APT[@]}" -qq update
if [ ${#pkgs[@]} -gt 0 ]; then
  say "apt-get install ${pkgs[*]}"
  "${APT[@]}" -qq install -y "${pkgs[@]}" >/dev/null
fi

# --- 4. qemu-user from backports, unpacked only ----------------------------------------------
if [ $qemu_needed -eq 1 ]; then
  pkg_version=$(apt-cache policy qemu-user | sed -nE 's/^[ *]+([^ ]+bpo[^ ]*) .*/\1/p' | head -n1)
  if [ -z "$pkg_version" ]; then
    say "error: no qemu-user in $BACKPORTS after apt-get update; check /etc/apt/sources.list*" >&2
    exit 1
  fi
  mkdir -p "$QEMU_DIR/usr/bin"
  tmp=$(mktemp -d "$QEMU_DIR/../qemu-download.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  say "apt-get download qemu-user=$pkg_version ($BACKPORTS, ~63 MB)"
  # The package holds static binaries for every target (~370 MB unpacked): keep only aarch64.
  (cd "$tmp" && "${APT[@]}" -qq -o APT::Sandbox::User=root download "qemu-user=$pkg_version")
  dpkg -x "$tmp"/qemu-user_*.deb "$tmp/x"
  install -m 0755 "$tmp/x/usr/bin/qemu-aarch64" "$QEMU_BIN.new"
  mv -f "$QEMU_BIN.new" "$QEMU_BIN"
  echo "$pkg_version" >"$QEMU_DIR/VERSION"
  qv=$(qemu_version)
  if [ -z "$qv" ] || [ "${qv%%.*}" -lt "$QEMU_MIN_MAJOR" ]; then
    say "error: $QEMU_BIN reports version '${qv:-none}', need >= $QEMU_MIN_MAJOR" >&2
    exit 1
  fi
  say "qemu-aarch64: unpacked $qv into $QEMU_BIN"
fi
say "done"
