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

A thread serving a request waits for the client's bytes. cheroot bounds each wait (the socket
timeout) but not their sum, so a client sending a byte every few seconds could hold a thread for
ever; here a request's head and body must also arrive within a whole-request deadline
(ReadDeadline), after which the thread is free again (ARCHITECTURE.md, "Threads that cannot be
held hostage").
"""

from __future__ import annotations

import socket
import ssl
import time
from pathlib import Path

from cheroot import server as cheroot_server
from cheroot import wsgi
from cheroot.makefile import MakeFile
from cheroot.ssl.builtin import BuiltinSSLAdapter

from edge.errors import UsageError

SERVER_NAME = "lesionlite"
# Threads serving requests at once: a few decodes in parallel plus a few slow uploads or drains.
# Each may hold an upload of up to the upload limit, so threads x limit bounds that memory.
SERVER_THREADS = 8
# Seconds a socket read or write may wait for the client.
SOCKET_TIMEOUT_S = 10
# Seconds a request's head and body may take to arrive, all waits together (python -m pwa
# --request-timeout): 20 MB in 30 s needs 5.6 Mbit/s, which Wi-Fi near a kiosk gives.
REQUEST_TIMEOUT_S = 30.0


class RequestTooSlowError(OSError):
    """The request did not arrive in time: past its deadline, or silent for the socket timeout.

    Its message is cheroot's word for a timeout, so cheroot answers 408 while reading a head;
    pwa/errors.py answers it during a body. Not a TimeoutError: socket.SocketIO would then refuse
    every later read, and cheroot's own reading of what is left of the body would fail into a 500.
    """

    def __init__(self) -> None:
        super().__init__("timed out")


class ReadDeadline:
    """The socket as the request reader sees it: each read waits at most the socket timeout and at
    most until the deadline, if one is set. The first read that runs out of time raises
    RequestTooSlowError; later ones find the body ended, so the app's answer still goes out (cheroot
    reads what is left of a body before answering) and the connection then closes. Writes are
    untouched (the socket timeout is restored after every read)."""

    def __init__(self, sock: socket.socket, timeout_s: float):
        self._sock = sock
        self._timeout_s = timeout_s
        self._until: float | None = None
        self.timed_out = False

    def start(self, seconds: float) -> None:
        self._until = time.monotonic() + seconds
        self.timed_out = False

    def stop(self) -> None:
        self._until = None

    def recv_into(self, *args) -> int:  # what socket.SocketIO reads with
        if self.timed_out:
            return 0
        wait = self._timeout_s if self._until is None else min(self._timeout_s, self._until - time.monotonic())
        try:
            if wait <= 0:
                raise TimeoutError("the request's deadline passed")
            self._sock.settimeout(wait)
            return self._sock.recv_into(*args)
        except TimeoutError:
            self.timed_out = True
            raise RequestTooSlowError() from None
        finally:
            self._sock.settimeout(self._timeout_s)

    def __getattr__(self, name: str):
        return getattr(self._sock, name)  # everything else is the socket's own


class BoundedConnection(cheroot_server.HTTPConnection):
    """A connection whose requests must arrive within server.request_timeout seconds each."""

    def __init__(self, server, sock, makefile=MakeFile):
        self.deadline = ReadDeadline(sock, server.timeout)

        def reader_with_deadline(raw, mode, bufsize):
            return makefile(self.deadline if "r" in mode else raw, mode, bufsize)

        super().__init__(server, sock, reader_with_deadline)

    def communicate(self):
        self.deadline.start(self.server.request_timeout)  # from the first byte of this request
        try:
            keep = super().communicate()
        finally:
            self.deadline.stop()  # between keep-alive requests the selector waits, not a thread
        return keep and not self.deadline.timed_out  # a late client's unread bytes are not a request


class DeferredHandshakeSSLAdapter(BuiltinSSLAdapter):
    """cheroot's builtin adapter, but wrap() leaves the handshake to HandshakingConnection."""

    def wrap(self, sock):
        wrapped = self.context.wrap_socket(sock, do_handshake_on_connect=False, server_side=True)
        return wrapped, {"wsgi.url_scheme": "https", "HTTPS": "on"}


class HandshakingConnection(BoundedConnection):
    """Completes a deferred TLS handshake before the first request, in the worker thread."""

    handshaken = False

    def communicate(self):
        if not self.handshaken and isinstance(self.socket, ssl.SSLSocket):
            try:
                self.socket.do_handshake()  # each wait bounded by the socket timeout
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


def build_server(app, host: str, port: int, cert: str | None = None, key: str | None = None,
                 threads: int = SERVER_THREADS, request_timeout_s: float = REQUEST_TIMEOUT_S) -> wsgi.Server:
    """A cheroot server for the WSGI app on host:port (0: any free port), HTTPS when cert and key are given.

    Raises:
        UsageError: the certificate or key cannot be used (see tls_adapter).
    """
    server = wsgi.Server(
        (host, port), app, numthreads=threads, server_name=SERVER_NAME, timeout=SOCKET_TIMEOUT_S
    )
    server.max_request_body_size = 0  # no server-side limit: the app answers 413 in JSON
    server.request_timeout = request_timeout_s
    server.ConnectionClass = BoundedConnection
    if cert and key:
        server.ssl_adapter = tls_adapter(cert, key)
        server.ConnectionClass = HandshakingConnection
    return server
