#!/usr/bin/env bash
# Install LesionLite on a Raspberry Pi running Raspberry Pi OS Bookworm 64-bit (Debian bookworm
# arm64, Python 3.11): the edge runtime and PWA server as a hardened system service, and (unless
# --no-kiosk) a full-screen Chromium kiosk in the desktop session. The server runs with
# --camera auto: a Camera Module (libcamera, through the system's Picamera2) or a USB webcam.
# Safe to run again: it updates the code, the venv (only when requirements change), the bundle
# and the units.
# A triage and teaching aid, never a diagnosis.
set -euo pipefail

PREFIX=/opt/lesionlite
SERVICE_USER=lesionlite
PORT=8000
URL=http://localhost:$PORT/
KIOSK_URL=http://localhost:8001/   # the kiosk's own listener (127.0.0.1 only, with the camera)
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE=$SRC/edge/pi

usage() {
  cat <<EOF
usage: sudo $0 BUNDLE_DIR [--no-kiosk]

  BUNDLE_DIR   an exported LesionLite bundle (manifest.json + *.tflite), e.g. runs/NAME/bundle;
               copied to $PREFIX/bundle
  --no-kiosk   server only (Raspberry Pi OS Lite, or a Pi without a screen); removes a kiosk
               installed earlier

Installs the repository to $PREFIX, a venv with requirements/edge.txt only (never TensorFlow),
the system user '$SERVICE_USER' (in the group video, for the camera), lesionlite.service (the PWA
for phones on port $PORT; the server's camera only on the kiosk's own listener, $KIOSK_URL)
and, for the desktop, lesionlite-kiosk.service + its XDG autostart entry (Chromium full screen at
$KIOSK_URL). With a Camera Module attached it installs
python3-picamera2 if missing and lets the venv import it.
EOF
}

say() { echo "lesionlite-install: $*"; }
die() { echo "lesionlite-install: error: $*" >&2; exit 1; }

# --- arguments ---------------------------------------------------------------------------------
BUNDLE=""
KIOSK=1
for arg in "$@"; do
  case "$arg" in
    -h|--help) usage; exit 0 ;;
    --no-kiosk) KIOSK=0 ;;
    -*) usage >&2; die "unknown option: $arg" ;;
    *) [ -z "$BUNDLE" ] || { usage >&2; die "one bundle only (got '$BUNDLE' and '$arg')"; }
       BUNDLE=$arg ;;
  esac
done
[ -n "$BUNDLE" ] || { usage >&2; die "missing BUNDLE_DIR"; }
[ -d "$BUNDLE" ] || die "bundle '$BUNDLE' is not a directory"
[ -f "$BUNDLE/manifest.json" ] || die "bundle '$BUNDLE' has no manifest.json (export a model first)"
BUNDLE=$(cd "$BUNDLE" && pwd)
[ "$(id -u)" = 0 ] || die "run as root: sudo $0 $*"
case "$(uname -m)" in
  aarch64|x86_64) ;;
  *) die "$(uname -m) is not supported: ai-edge-litert has no wheels for it; install the 64-bit Raspberry Pi OS" ;;
esac
command -v python3 >/dev/null || die "python3 not found"
python3 -c 'import sys; sys.exit(sys.version_info[:2] < (3, 11))' \
  || die "Python >= 3.11 needed (Raspberry Pi OS Bookworm has 3.11); found $(python3 -V 2>&1)"
# The PWA's on-device runtime (LiteRT.js, pwa/static/vendor/) is built on the workstation by
# `make web` (Node and npm) and arrives with the copied repository: a Pi never runs npm.
VENDOR=$SRC/pwa/static/vendor
[ -f "$VENDOR/build.json" ] \
  || die "the web app's on-device runtime is missing ($VENDOR): run 'make web' on your workstation, then copy the repository again (see docs/pi-kiosk.md, Installing)"

# --- 0. cameras --------------------------------------------------------------------------------
# A Camera Module is driven by libcamera, which rpicam-hello (libcamera-hello before late 2023)
# lists: "0 : imx708 [4608x2592 10-bit RGGB] (/base/...)". A USB webcam is a V4L2 device with a
# /dev/v4l/by-id link (the Pi's own /dev/video* nodes, codec and ISP, have none).
CAMERA_MODULE=0
lister=$(command -v rpicam-hello || command -v libcamera-hello || true)
if [ -n "$lister" ] && timeout 30 "$lister" --list-cameras 2>/dev/null | grep -Eq '^[[:space:]]*[0-9]+ : '; then
  CAMERA_MODULE=1
  say "camera: Camera Module found by $(basename "$lister") (served through Picamera2)"
elif compgen -G '/dev/v4l/by-id/usb-*-video-index0' >/dev/null; then
  say "camera: USB webcam found (served through OpenCV)"
else
  say "camera: none found; the server starts without one (connect one and restart lesionlite.service)"
fi

# --- 1. Debian packages (apt-get update only when something is missing) -----------------------
pkgs=()
if [ $CAMERA_MODULE = 1 ] && ! python3 -c 'import picamera2' 2>/dev/null; then
  pkgs+=(python3-picamera2)   # preinstalled on Raspberry Pi OS, except on some Lite images
fi
python3 -c 'import ensurepip' 2>/dev/null || pkgs+=(python3-venv)
command -v rsync >/dev/null || pkgs+=(rsync)
need_browser=0
if [ $KIOSK = 1 ]; then
  command -v curl >/dev/null || pkgs+=(curl)   # the kiosk unit waits for the server with it
  command -v chromium-browser >/dev/null || command -v chromium >/dev/null || need_browser=1
fi
if [ ${#pkgs[@]} -gt 0 ] || [ $need_browser = 1 ]; then
  export DEBIAN_FRONTEND=noninteractive
  say "apt-get update"
  apt-get update -qq
  if [ $need_browser = 1 ]; then
    # Raspberry Pi OS names the browser chromium-browser; plain Debian names it chromium.
    if apt-cache show --no-all-versions chromium-browser 2>/dev/null | grep -q '^Version:'; then
      pkgs+=(chromium-browser)
    else
      pkgs+=(chromium)
    fi
  fi
  say "apt-get install ${pkgs[*]}"
  apt-get install -y -qq "${pkgs[@]}"
else
  say "Debian packages: ok"
fi

# --- 2. service user -------------------------------------------------------------------------
if id "$SERVICE_USER" >/dev/null 2>&1; then
  say "user $SERVICE_USER: ok"
else
  useradd --system --user-group --home-dir /var/lib/lesionlite --no-create-home \
    --shell /usr/sbin/nologin --comment "LesionLite server" "$SERVICE_USER"
  say "user $SERVICE_USER: created"
fi
usermod -a -G video "$SERVICE_USER"   # /dev/video*, /dev/media*, /dev/dma_heap/* are group video

# --- 3. code (owned by root, readable by the service) -----------------------------------------
install -d -m 0755 "$PREFIX"
if [ "$SRC" != "$PREFIX" ]; then
  rsync -a --delete --chmod=D755,F644 \
    --exclude=/.git --exclude=/.venv --exclude=/.cache --exclude=/bundle --exclude=/runs \
    --exclude=/demo-data --exclude=__pycache__ --exclude='*.pyc' --exclude=node_modules \
    --exclude=.pytest_cache --exclude=.ruff_cache --exclude=.hypothesis \
    "$SRC/" "$PREFIX/"
  chmod 0755 "$PREFIX/edge/pi/install.sh"
  say "code: $SRC -> $PREFIX"
else
  say "code: running from $PREFIX, not copied"
fi

# --- 4. venv with the edge requirements only --------------------------------------------------
VENV=$PREFIX/.venv
# Picamera2 is a Debian package (python3-picamera2, with libcamera's Python bindings), not on PyPI
# for the Pi. This .pth file appends the system's dist-packages to the venv's path, after the
# venv's own site-packages, so the venv's pinned packages (numpy 2, Pillow) still win and only
# what the venv lacks (picamera2, libcamera, pidng, ...) comes from the system. Chosen over
# --system-site-packages: it is added or removed without recreating the venv, it exists only on a
# Pi with a Camera Module, and pip never sees Debian's packages while installing. The system's
# simplejpeg is built for numpy 1.x and would fail to load under the venv's numpy 2; the venv
# therefore has its own simplejpeg (requirements/edge.txt), which shadows it.
camera_pth() {
  echo "$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')/lesionlite-system-picamera2.pth"
}
REQS=$PREFIX/requirements/edge.txt
CONS=$PREFIX/requirements/constraints.txt
want=$(cat "$REQS" "$CONS" 2>/dev/null | sha256sum | cut -d' ' -f1)
if [ -x "$VENV/bin/python" ] && [ "$(cat "$VENV/.lesionlite-requirements" 2>/dev/null)" = "$want" ]; then
  say "venv: ok ($VENV)"
else
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  rm -f "$(camera_pth)"   # pip sees the venv's own packages only
  say "venv: pip install -r requirements/edge.txt (a few minutes on a Pi)"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
  cons_args=()
  [ -f "$CONS" ] && cons_args=(-c "$CONS")
  # Wheels only: every edge requirement has an aarch64 wheel, so no compiler or python3-dev.
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --only-binary=:all: \
    -r "$REQS" "${cons_args[@]}"
  echo "$want" >"$VENV/.lesionlite-requirements"
fi
if [ $CAMERA_MODULE = 1 ]; then
  echo /usr/lib/python3/dist-packages >"$(camera_pth)"
  if "$VENV/bin/python" -c 'from picamera2 import Picamera2; import sys; sys.exit(not Picamera2.global_camera_info())'; then
    say "venv: imports the system's Picamera2 and sees the Camera Module"
  else
    say "warning: the venv cannot use Picamera2 (see above); the server will run without the Camera Module"
  fi
else
  rm -f "$(camera_pth)"
fi
# The service cannot write bytecode (ProtectSystem=strict): compile the project once here.
"$VENV/bin/python" -m compileall -q "$PREFIX/edge" "$PREFIX/pwa" >/dev/null || true
"$VENV/bin/python" - <<'EOF' || die "the venv is broken or contains TensorFlow (see above)"
import importlib.util, sys
for forbidden in ("tensorflow", "keras"):
    if importlib.util.find_spec(forbidden):
        sys.exit(f"{forbidden} is installed in the Pi venv; the edge runtime must not depend on it")
import ai_edge_litert.interpreter, flask, numpy, PIL  # noqa: F401,E401
EOF

# --- 5. bundle (swapped in whole) -----------------------------------------------------------
rm -rf "$PREFIX/bundle.new"
cp -a "$BUNDLE" "$PREFIX/bundle.new"
chown -R root:root "$PREFIX/bundle.new"
chmod -R u=rwX,go=rX "$PREFIX/bundle.new"
rm -rf "$PREFIX/bundle.old"
[ -e "$PREFIX/bundle" ] && mv "$PREFIX/bundle" "$PREFIX/bundle.old"
mv "$PREFIX/bundle.new" "$PREFIX/bundle"
rm -rf "$PREFIX/bundle.old"
say "bundle: $BUNDLE -> $PREFIX/bundle"

# --- 6. units ------------------------------------------------------------------------------
install -m 0644 "$HERE/lesionlite.service" /etc/systemd/system/lesionlite.service
if [ $KIOSK = 1 ]; then
  install -m 0644 "$HERE/lesionlite-kiosk.service" /etc/systemd/user/lesionlite-kiosk.service
  install -D -m 0644 "$HERE/lesionlite-kiosk.desktop" /etc/xdg/autostart/lesionlite-kiosk.desktop
  say "kiosk: installed (starts at the next desktop login)"
else
  rm -f /etc/systemd/user/lesionlite-kiosk.service /etc/xdg/autostart/lesionlite-kiosk.desktop
  say "kiosk: not installed (--no-kiosk)"
fi

if [ -d /run/systemd/system ]; then
  systemctl daemon-reload
  systemctl enable --quiet lesionlite.service
  systemctl restart lesionlite.service
  say "lesionlite.service: enabled and (re)started; waiting for $URL ..."
  for _ in $(seq 1 90); do
    if "$VENV/bin/python" -c "import urllib.request; urllib.request.urlopen('$URL', timeout=2)" 2>/dev/null; then
      say "up: $URL (on the network: http://$(hostname -I 2>/dev/null | cut -d' ' -f1):$PORT/)"
      exit 0
    fi
    sleep 1
  done
  systemctl --no-pager status lesionlite.service || true
  die "the server did not answer at $URL within 90 s; see: journalctl -u lesionlite.service"
else
  # e.g. inside a chroot while building an SD-card image: enable only.
  systemctl enable --quiet lesionlite.service
  say "systemd is not running here: lesionlite.service enabled, not started"
fi
