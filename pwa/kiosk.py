"""Who may use the kiosk's own listener: the kiosk's browser on the machine itself, nobody else.

The listener is bound to 127.0.0.1 (python -m pwa --kiosk-port), so only this machine connects.
That is not enough on its own: a web page open in the kiosk's browser can rename its own site to
127.0.0.1 (DNS rebinding) and then read the listener as if it were its own, or post to it from
another site. So a request must also name the kiosk in its Host header, carry no header of a
forwarder, and not be a browser's cross-site request (Sec-Fetch-Site). pwa/errors.py answers the
refusal with a JSON 403.
"""

from __future__ import annotations

import urllib.parse

from flask import Flask, request

# The names the kiosk's browser uses for its own machine (the kiosk unit opens http://localhost:PORT/).
KIOSK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
# A request that came through a forwarder that says so is from someone else.
PROXY_HEADERS = ("Forwarded", "X-Forwarded-For", "X-Real-IP")
# Sec-Fetch-Site of the kiosk page's own requests, and of an address typed or opened by the unit.
OWN_FETCH_SITES = frozenset({"same-origin", "none"})
NOT_KIOSK = ("This listener serves only the kiosk's own browser, at http://localhost on this machine; "
             "phones use the address the server printed for the network.")


class NotTheKioskError(Exception):
    """A request on the kiosk's listener that is not from the kiosk's own browser (403)."""


def init_app(app: Flask) -> None:
    """Refuse every request to `app` that is not from the kiosk's own browser."""
    app.before_request(refuse_all_but_the_kiosk)


def from_the_kiosk() -> bool:
    """The kiosk's own browser: its Host is one of the machine's own names (a rebinding page sends
    its own name), no forwarder says it forwarded, and the browser does not call the request
    cross-site (a page from elsewhere posting to localhost)."""
    host = urllib.parse.urlsplit(f"//{request.host}").hostname if request.host else None
    return (host in KIOSK_HOSTS
            and not any(name in request.headers for name in PROXY_HEADERS)
            and request.headers.get("Sec-Fetch-Site", "none") in OWN_FETCH_SITES)


def refuse_all_but_the_kiosk() -> None:
    if not from_the_kiosk():
        raise NotTheKioskError(NOT_KIOSK)
