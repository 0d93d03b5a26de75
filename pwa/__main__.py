"""Serve the LesionLite PWA and API with cheroot (a production WSGI server, not Flask's dev server).

Example usage:
    python -m pwa --bundle runs/demo/bundle
    python -m pwa --bundle runs/demo/bundle --host 0.0.0.0 --port 8443 --cert kiosk.crt --key kiosk.key
    python -m pwa --bundle runs/demo/bundle --camera auto --kiosk-idle 60     # a Pi kiosk's own camera

Phones get the live camera only over HTTPS (or on localhost); over plain HTTP on a LAN the page
falls back to the phone's own camera app through a file input. --cert/--key serve HTTPS with
cheroot's TLS adapter; a reverse proxy such as Caddy in front of plain HTTP works too.
--camera gives the server a camera of its own (a Pi's Camera Module, which no browser can open):
the page opened on the machine itself becomes the kiosk page, with its live preview; phones on
the network keep using their own camera and are refused the server's.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import socket
import sys

from edge.errors import UsageError, run_cli
from pwa import camera_api, create_app, server
from pwa.server import build_server

PROG = "python -m pwa"


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
    parser.add_argument("--bundle", required=True, help="exported bundle folder (runs/NAME/bundle)")
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
        "or stream URL (default: none)",
    )
    parser.add_argument("--camera-allow-remote", action="store_true",
                        help="let other machines use the server's camera API (default: this machine only)")
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
    bundle, certificate, key or address."""
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
            "CAMERA_ALLOW_REMOTE": args.camera_allow_remote,
            "KIOSK_IDLE_S": args.kiosk_idle,
        }
    )
    try:
        serve(app, args)
    finally:
        camera_api.close(app)
    return 0


def serve(app, args: argparse.Namespace) -> None:
    listener = build_server(app, args.host, args.port, args.cert, args.key, request_timeout_s=args.request_timeout)
    try:
        listener.prepare()  # binds the socket
    except OSError as err:
        raise UsageError(f"cannot listen on {args.host}:{args.port}: {err.strerror or err}") from None
    port = listener.bind_addr[1]
    scheme = "https" if args.cert else "http"
    for address in lan_addresses(args.host):
        print(f"LesionLite serving at {scheme}://{address}:{port}/", flush=True)
    camera = camera_api.description(app)
    if camera:
        print(f"Server camera: {camera}; the kiosk page is http://localhost:{port}/ on this machine", flush=True)
    print("A triage and teaching aid, not a diagnosis. Ctrl-C stops.", flush=True)
    try:
        with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how a kiosk operator stops it
            listener.serve()
    finally:
        camera_api.close(app)  # first: it ends the preview streams that hold server threads
        listener.stop()


if __name__ == "__main__":
    sys.exit(run_cli(main, prog=PROG))
