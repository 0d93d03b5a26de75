"""Serve the LesionLite PWA and API with waitress (a production WSGI server, not Flask's dev server).

Example usage:
    python -m pwa --bundle runs/demo/bundle
    python -m pwa --bundle runs/demo/bundle --host 0.0.0.0 --port 8443 --cert kiosk.crt --key kiosk.key

Phones get the live camera only over HTTPS (or on localhost); over plain HTTP on a LAN the page
falls back to the phone's own camera app through a file input. --cert/--key put a TLS
terminator in front of waitress (see pwa/tls.py); a reverse proxy such as Caddy works too.
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import sys

import waitress

from edge import BundleError
from pwa import create_app, tls

# Waitress spools request bodies over inbuf_overflow to a temporary file, and answers bodies over
# max_request_body_size itself. Both sit just above Flask's limit, so a photo is never written to
# disk and a slightly-too-large upload still gets the app's JSON 413.
BODY_SLACK = 1024 * 1024
WAITRESS_THREADS = 4


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m pwa",
        description=__doc__.split("\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--bundle", required=True, help="exported bundle folder (runs/NAME/bundle)")
    parser.add_argument("--variant", default="int8", help="model variant in the bundle")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: whole LAN)")
    parser.add_argument("--port", type=int, default=8000, help="port (0 picks a free one)")
    parser.add_argument("--threads", type=int, default=None, help="LiteRT interpreter threads (None: LiteRT decides)")
    parser.add_argument("--cert", help="TLS certificate (PEM) for HTTPS; needs --key")
    parser.add_argument("--key", help="TLS private key (PEM) for HTTPS; needs --cert")
    parser.add_argument(
        "--cors-origin",
        action="append",
        default=[],
        metavar="URL",
        help="an origin allowed to call /api cross-origin (repeatable); none: same-origin only",
    )
    parser.add_argument(
        "--max-upload-mb", type=float, default=20, help="largest upload accepted, in MB"
    )
    args = parser.parse_args(argv)
    if bool(args.cert) != bool(args.key):
        parser.error("--cert and --key go together")
    return args


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
    args = parse_args(argv)
    max_bytes = int(args.max_upload_mb * 1024 * 1024)
    try:
        app = create_app(
            {
                "BUNDLE": args.bundle,
                "VARIANT": args.variant,
                "THREADS": args.threads,
                "MAX_CONTENT_LENGTH": max_bytes,
                "CORS_ORIGINS": args.cors_origin,
            }
        )
        context = tls.server_context(args.cert, args.key) if args.cert else None
    except (BundleError, tls.TLSConfigError) as err:
        print(f"python -m pwa: error: {err}", file=sys.stderr)
        return 2
    secure = context is not None
    server = waitress.create_server(
        app,
        host="127.0.0.1" if secure else args.host,
        port=0 if secure else args.port,
        threads=WAITRESS_THREADS,
        url_scheme="https" if secure else "http",
        max_request_body_size=max_bytes + BODY_SLACK,
        inbuf_overflow=max_bytes + BODY_SLACK,
        ident="lesionlite",
    )
    port = server.effective_port
    if secure:
        port = tls.start_relay(args.host, args.port, server.effective_port, context)
    scheme = "https" if secure else "http"
    for address in lan_addresses(args.host):
        print(f"LesionLite serving at {scheme}://{address}:{port}/", flush=True)
    print("A triage and teaching aid, not a diagnosis. Ctrl-C stops.", flush=True)
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how a kiosk operator stops it
        server.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
