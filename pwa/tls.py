"""HTTPS for `python -m pwa --cert --key`: a small TLS terminator in front of waitress.

Phones only give a web page the live camera in a secure context, i.e. over HTTPS on a LAN.
Waitress has no TLS (its maintainers point to a reverse proxy), and wrapping its listening socket
with ssl would put blocking handshakes on its single event loop. So the process runs waitress on
a private loopback port and this asyncio relay on the public one: asyncio does the handshakes
without blocking, then copies bytes both ways; waitress still parses every HTTP request.

For a kiosk that should also get certificates renewed, prefer a real reverse proxy in front of
plain `python -m pwa` (e.g. Caddy: `caddy reverse-proxy --from https://kiosk.local --to 127.0.0.1:8000`).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading
from pathlib import Path

CHUNK = 64 * 1024
HANDSHAKE_TIMEOUT_S = 10


class TLSConfigError(Exception):
    """The certificate or key cannot be used (message says which and why)."""


def server_context(cert: str, key: str) -> ssl.SSLContext:
    """A server-side TLS context (TLS 1.2+, Python's secure defaults) for this cert and key.

    Raises:
        TLSConfigError: a file is missing or unreadable, or the key does not match the cert.
    """
    for path in (cert, key):
        if not Path(path).is_file():
            raise TLSConfigError(f"cannot read {path}: no such file")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(certfile=cert, keyfile=key)
    except (OSError, ssl.SSLError) as err:
        raise TLSConfigError(f"cannot use certificate {cert} with key {key}: {err}") from None
    return context


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, half_close: bool) -> None:
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
        if half_close and writer.can_write_eof():
            writer.write_eof()  # the client finished sending; the response may still be coming
        else:
            writer.close()
    except (ConnectionError, ssl.SSLError, OSError):
        writer.close()


async def _relay(backend_port: int, client_reader, client_writer) -> None:
    try:
        backend_reader, backend_writer = await asyncio.open_connection("127.0.0.1", backend_port)
    except OSError:
        client_writer.close()
        return
    await asyncio.gather(
        _pipe(client_reader, backend_writer, half_close=True),
        _pipe(backend_reader, client_writer, half_close=False),
    )
    for writer in (backend_writer, client_writer):
        writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError, OSError):
            await writer.wait_closed()


def start_relay(host: str, port: int, backend_port: int, context: ssl.SSLContext) -> int:
    """Listen for TLS on host:port in a daemon thread, relaying to 127.0.0.1:backend_port.

    Returns the bound port (useful with port 0).

    Raises:
        OSError: the address cannot be bound.
    """
    loop = asyncio.new_event_loop()

    async def handle(reader, writer):
        await _relay(backend_port, reader, writer)

    server = loop.run_until_complete(
        asyncio.start_server(handle, host, port, ssl=context, ssl_handshake_timeout=HANDSHAKE_TIMEOUT_S)
    )
    threading.Thread(target=loop.run_forever, name="tls-relay", daemon=True).start()
    return server.sockets[0].getsockname()[1]
