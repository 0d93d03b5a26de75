"""Bodies over the upload limit: the app's JSON 413 whatever the path, then the rest drained.

A client still sending when the answer is ready would see a connection reset, not the answer, if
the server closed at once. So the 413 is written first, then the rest of the body is read and
thrown away (never stored) up to DRAIN_FACTOR times the limit or DRAIN_SECONDS, whichever comes
first, and never past the request's own deadline (pwa/server.py); the server then closes the
connection (cheroot closes after every 413). Those bounds are what a client that keeps sending
can hold a thread for after its 413.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import BinaryIO

from flask import Flask, Response, current_app, request
from werkzeug.exceptions import RequestEntityTooLarge

DRAIN_FACTOR = 4
# Long enough for a phone that is still sending to finish and read the answer on a LAN (25 MB
# drains in well under a second here), short enough that eight of them do not hold the server.
DRAIN_SECONDS = 5.0
CHUNK = 64 * 1024


def init_app(app: Flask) -> None:
    # before_request runs before routing errors are raised, so a too-large body gets a 413 even
    # on a path that would answer 404 or 405, and no view ever starts reading it.
    app.before_request(_refuse_oversized_body)


def _refuse_oversized_body() -> None:
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    if limit is not None and (request.content_length or 0) > limit:
        raise RequestEntityTooLarge()


def drain_after(response: Response) -> Response:
    """Make the server discard the unread body after it has sent this response."""
    stream = request.environ["wsgi.input"]
    limit = current_app.config["MAX_CONTENT_LENGTH"] or 0
    bound = DRAIN_FACTOR * limit
    if request.content_length is not None:
        bound = min(bound, request.content_length)
    response.call_on_close(lambda: discard(stream, bound, DRAIN_SECONDS))
    return response


def discard(stream: BinaryIO, max_bytes: int, seconds: float, clock: Callable[[], float] = time.monotonic) -> int:
    """Read and drop up to max_bytes from stream for at most about `seconds`; returns the bytes read.

    Each read also waits at most the server's socket timeout, so a silent client cannot hold a
    thread much longer than `seconds`.
    """
    deadline = clock() + seconds
    done = 0
    while done < max_bytes and clock() < deadline:
        try:
            chunk = stream.read(min(CHUNK, max_bytes - done))
        except (OSError, ValueError):  # the client went away or stopped sending
            break
        if not chunk:
            break
        done += len(chunk)
    return done
