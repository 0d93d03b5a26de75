"""Serve the LesionLite PWA and API with cheroot (a production WSGI server, not Flask's dev server).

Example usage:
    python -m pwa                                    # the shipped model (models/), http://127.0.0.1:8000
    python -m pwa --bundle runs/demo/bundle
    python -m pwa --bundle runs/demo/bundle --host 0.0.0.0 --port 8443 --cert kiosk.crt --key kiosk.key
    python -m pwa --bundle runs/demo/bundle --host 0.0.0.0 --camera auto --kiosk-port 8001   # a Pi kiosk

Phones get the live camera only over HTTPS (or on localhost); over plain HTTP on a LAN the page
falls back to the phone's own camera app through a file input. --cert/--key serve HTTPS with
cheroot's TLS adapter; a reverse proxy such as Caddy in front of plain HTTP works too.
--camera gives the server a camera of its own (a Pi's Camera Module, which no browser can open),
served only to the kiosk's own browser: on a second listener, at http://localhost:KIOSK-PORT/ on
this machine, which shows the kiosk page. The listener phones reach never has the camera.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import socket
import sys
import threading

from edge.bundle import SHIPPED_MODEL
from edge.errors import UsageError, run_cli
from pwa import camera_api, create_app, create_kiosk_app, live, server
from pwa.server import build_server

PROG = "python -m pwa"
# The kiosk's own listener: only this machine, and threads for the previews plus a capture and a page.
KIOSK_HOST = "127.0.0.1"
KIOSK_PORT = 8001
KIOSK_THREADS = live.MAX_VIEWERS + 2


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose errors are UsageErrors, so run_cli prints them in one line and exits 2."""

    def error(self, message: str):  # argparse's hook; its default prints the usage and exits
        raise UsageError(message)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The options, each checked: a bad value stops the command with one line naming it.

    Raises:
        UsageError: an unknown option, or a value out of its range.
    """
    parser = ArgumentParser(prog=PROG, description=__doc__.split("\n")[0],
                            formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--bundle", default=str(SHIPPED_MODEL),
                        help="exported bundle folder (runs/NAME/bundle); without one, the shipped model")
    parser.add_argument("--variant", default=None, help="model variant in the bundle (None: its default_variant)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: whole LAN)")
    parser.add_argument("--port", type=port_number, default=8000, help="port (0 picks a free one)")
    parser.add_argument("--threads", type=at_least_one, default=None, help="LiteRT interpreter threads (None: LiteRT decides)")
    parser.add_argument("--cert", help="TLS certificate (PEM) for HTTPS; needs --key")
    parser.add_argument("--key", help="TLS private key (PEM) for HTTPS; needs --cert")
    parser.add_argument(
        "--cors-origin",
        action="append",
        default=[],
        metavar="URL",
        help="an origin allowed to call /api cross-origin (repeatable); none: same-origin only",
    )
    parser.add_argument("--max-upload-mb", type=positive_number, default=20, help="largest upload accepted, in MB")
    parser.add_argument("--request-timeout", type=positive_number, default=server.REQUEST_TIMEOUT_S, metavar="SECONDS",
                        help="a request's head and body must arrive within this long, or its thread is freed (408)")
    add_camera_arguments(parser)
    args = parser.parse_args(argv)
    if bool(args.cert) != bool(args.key):
        parser.error("--cert and --key go together")
    if args.camera and args.kiosk_port == args.port != 0:
        parser.error(f"--kiosk-port must differ from --port (both {args.port})")
    return args


def _number(text: str, kind: type):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def positive_number(text: str) -> float:
    value = _number(text, float)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def at_least_one(text: str) -> int:
    value = _number(text, int)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def non_negative_seconds(text: str) -> int:
    value = _number(text, int)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0 seconds, got {value}")
    return value


def port_number(text: str) -> int:
    value = _number(text, int)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port from 0 to 65535, got {value}")
    return value


def add_camera_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--camera", default=None, metavar="auto|picamera2|opencv|DEVICE",
        help="a camera on the server for the kiosk page: auto (the Camera Module via Picamera2, else "
        "OpenCV's camera 0, else none), picamera2, opencv, or an OpenCV device: a number, video file "
        "or stream URL. Served only on the kiosk's listener (--kiosk-port)",
    )
    parser.add_argument("--kiosk-port", type=port_number, default=KIOSK_PORT,
                        help="with --camera: the kiosk's own listener, on 127.0.0.1 only (0 picks a free one)")
    parser.add_argument("--kiosk-idle", type=non_negative_seconds, default=60, metavar="SECONDS",
                        help="the kiosk page returns from a result to the camera after this long untouched (0: never)")


def lan_addresses(host: str) -> list[str]:
    """The addresses a phone can use: the host itself, or this machine's LAN address for 0.0.0.0."""
    if host not in ("0.0.0.0", "::", ""):
        return [host]
    found = ["127.0.0.1"]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.255.255.255", 1))  # UDP connect sends nothing; it picks a route
            found.append(probe.getsockname()[0])
        except OSError:
            pass
    return found


def main(argv: list[str] | None = None) -> int:
    """Serve until Ctrl-C. Raises LesionLiteError (run_cli prints it, exit 2) for a bad option,
    bundle, certificate, key, camera or address."""
    args = parse_args(argv)
    app = create_app(
        {
            "BUNDLE": args.bundle,
            "VARIANT": args.variant,
            "THREADS": args.threads,
            "MAX_CONTENT_LENGTH": int(args.max_upload_mb * 1024 * 1024),
            "REQUEST_TIMEOUT_S": args.request_timeout,
            "CORS_ORIGINS": args.cors_origin,
            "CAMERA": args.camera,
            "KIOSK_IDLE_S": args.kiosk_idle,
        }
    )
    kiosk = create_kiosk_app(app) if args.camera else None
    try:
        serve(app, kiosk, args)
    finally:
        if kiosk is not None:
            camera_api.close(kiosk)
    return 0


def listening(listener, host: str, port: int):
    """The listener, bound (listener.bind_addr then holds the real port).

    Raises:
        UsageError: the address cannot be listened on.
    """
    try:
        listener.prepare()
    except OSError as err:
        raise UsageError(f"cannot listen on {host}:{port}: {err.strerror or err}") from None
    return listener


def phone_listener(app, args: argparse.Namespace):
    """The listener phones reach, bound to --host:--port; prints the addresses it serves at."""
    listener = listening(build_server(app, args.host, args.port, args.cert, args.key,
                                      request_timeout_s=args.request_timeout), args.host, args.port)
    scheme = "https" if args.cert else "http"
    for address in lan_addresses(args.host):
        print(f"LesionLite serving at {scheme}://{address}:{listener.bind_addr[1]}/", flush=True)
    return listener


def kiosk_listener(kiosk, args: argparse.Namespace):
    """The kiosk's own listener, bound to 127.0.0.1:--kiosk-port; prints the kiosk page's address."""
    listener = listening(build_server(kiosk, KIOSK_HOST, args.kiosk_port, threads=KIOSK_THREADS,
                                      request_timeout_s=args.request_timeout), KIOSK_HOST, args.kiosk_port)
    camera = camera_api.description(kiosk) or "none found"
    print(f"Kiosk page (this machine only) at http://localhost:{listener.bind_addr[1]}/ ; server camera: {camera}",
          flush=True)
    return listener


def serve(app, kiosk, args: argparse.Namespace) -> None:
    """Serve `app` on --host:--port and, with a camera, `kiosk` on 127.0.0.1:--kiosk-port, until Ctrl-C."""
    servers = [phone_listener(app, args)]
    if kiosk is not None:
        servers.append(kiosk_listener(kiosk, args))
    print("A triage and teaching aid, not a diagnosis. Ctrl-C stops.", flush=True)
    try:
        for extra in servers[1:]:
            threading.Thread(target=extra.serve, name="lesionlite-kiosk", daemon=True).start()
        with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how a kiosk operator stops it
            servers[0].serve()
    finally:
        if kiosk is not None:
            camera_api.close(kiosk)  # first: it ends the preview streams that hold server threads
        for running in servers:
            running.stop()


if __name__ == "__main__":
    sys.exit(run_cli(main, prog=PROG))
