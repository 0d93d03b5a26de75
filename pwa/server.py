"""The production server for the app: cheroot (CherryPy's WSGI server), with TLS from its builtin adapter.

Example usage:
    server = build_server(app, "0.0.0.0", 8443, cert="kiosk.crt", key="kiosk.key")
    server.prepare()          # binds; server.bind_addr then holds the real port
    server.serve()

cheroot keeps idle keep-alive connections in a selector, so its threads only serve requests.
Its builtin TLS adapter does each handshake in the one accept loop, so a client that connects and
never sends a TLS hello stalls every new connection for the socket timeout (cheroot issue #748).
Here the handshake is deferred to the worker thread that serves the connection instead.
Request bodies reach the app unbuffered (cheroot spools nothing to disk) and the app enforces
the upload limit itself, so an oversized upload gets the app's JSON 413 (pwa/oversize.py).
"""

from __future__ import annotations

import ssl
from pathlib import Path

from cheroot import server as cheroot_server
from cheroot import wsgi
from cheroot.ssl.builtin import BuiltinSSLAdapter

from edge.errors import UsageError

SERVER_NAME = "lesionlite"
# Threads serving requests at once: a few decodes in parallel plus a few slow uploads or drains.
SERVER_THREADS = 8
# Seconds a socket read or write may wait (also bounds each read of a drained body).
SOCKET_TIMEOUT_S = 10


class DeferredHandshakeSSLAdapter(BuiltinSSLAdapter):
    """cheroot's builtin adapter, but wrap() leaves the handshake to HandshakingConnection."""

    def wrap(self, sock):
        wrapped = self.context.wrap_socket(sock, do_handshake_on_connect=False, server_side=True)
        return wrapped, {"wsgi.url_scheme": "https", "HTTPS": "on"}


class HandshakingConnection(cheroot_server.HTTPConnection):
    """Completes a deferred TLS handshake before the first request, in the worker thread."""

    handshaken = False

    def communicate(self):
        if not self.handshaken and isinstance(self.socket, ssl.SSLSocket):
            try:
                self.socket.do_handshake()  # bounded by the socket timeout
            except OSError:  # ssl.SSLError and TimeoutError included
                return False  # not TLS, or gone: close without a word
            self.handshaken = True
        return super().communicate()


def tls_adapter(cert: str, key: str) -> BuiltinSSLAdapter:
    """cheroot's TLS adapter for this certificate and key (TLS 1.2 or newer).

    Raises:
        UsageError: a file is missing, or the key and certificate cannot be used together.
    """
    for path in (cert, key):
        if not Path(path).is_file():
            raise UsageError(f"cannot read {path}: no such file")
    try:
        adapter = DeferredHandshakeSSLAdapter(cert, key)
    except (OSError, ssl.SSLError) as err:
        raise UsageError(f"cannot use certificate {cert} with key {key}: {err}") from None
    adapter.context.minimum_version = ssl.TLSVersion.TLSv1_2
    return adapter


def build_server(app, host: str, port: int, cert: str | None = None, key: str | None = None) -> wsgi.Server:
    """A cheroot server for the WSGI app on host:port (0: any free port), HTTPS when cert and key are given.

    Raises:
        UsageError: the certificate or key cannot be used (see tls_adapter).
    """
    server = wsgi.Server(
        (host, port), app, numthreads=SERVER_THREADS, server_name=SERVER_NAME, timeout=SOCKET_TIMEOUT_S
    )
    server.max_request_body_size = 0  # no server-side limit: the app answers 413 in JSON
    if cert and key:
        server.ssl_adapter = tls_adapter(cert, key)
        server.ConnectionClass = HandshakingConnection
    return server
