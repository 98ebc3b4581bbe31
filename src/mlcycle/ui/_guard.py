"""Who may talk to the dashboard: the names it answers to, and who may act.

The dashboard binds to loopback, where every web page its user opens can
reach it. Like the model server (:mod:`mlcycle.serve._guard`, which this
follows without importing the serving stack):

* the ``Host`` header must be a loopback name, the bound address, or one
  given with ``--allowed-host``; otherwise 421 (DNS rebinding);
* an action (a POST) needs the admin token as ``Authorization: Bearer``
  (401 without, 403 when wrong), the ``X-Mlcycle-Action`` header (a
  cross-site form cannot set it, and a cross-site script cannot either
  without a CORS preflight the dashboard never grants), JSON, and, when the
  browser sends an ``Origin``, one of the allowed names.

The token never appears in a URL: the login form keeps it in the tab's
``sessionStorage`` and sends it as a header.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["ACTION_HEADER", "LOOPBACK", "HostGuard", "allowed_names", "check_action"]

LOOPBACK = ("localhost", "127.0.0.1", "[::1]")
ACTION_HEADER = "x-mlcycle-action"
_WILDCARDS = {"", "0.0.0.0", "::", "[::]"}


def hostname(authority: str) -> str:
    """``host[:port]`` → ``host``, lower case; IPv6 keeps its brackets.

    >>> hostname("LocalHost:5000"), hostname("[::1]:80")
    ('localhost', '[::1]')
    """
    if authority.startswith("["):
        end = authority.find("]")
        name = authority[: end + 1] if end > 0 else authority
    else:
        name, colon, port = authority.rpartition(":")
        if not colon or not port.isdigit():
            name = authority
    return name.lower().removesuffix(".")


def allowed_names(bind: str, extra: Iterable[str] = ()) -> tuple[str, ...]:
    """Loopback, the bound address (unless every interface), and ``extra``.

    >>> allowed_names("0.0.0.0", ["ui.example.com"])
    ('localhost', '127.0.0.1', '[::1]', 'ui.example.com')
    """
    names = list(LOOPBACK)
    if bind not in _WILDCARDS:
        names.append(hostname(bind))
    names.extend(extra)
    return tuple(dict.fromkeys(n.lower() for n in names))


class HostGuard:
    """ASGI middleware: 421 for a ``Host`` the dashboard does not answer to."""

    def __init__(self, app: ASGIApp, names: Iterable[str]) -> None:
        self.app = app
        self.names = frozenset(names)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            host = dict(scope["headers"]).get(b"host")
            if host is not None and not self.allows(host.decode("latin-1")):
                text = f"Host {host.decode('latin-1')!r} is not a name this dashboard answers to"
                await PlainTextResponse(text, status_code=421)(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def allows(self, authority: str) -> bool:
        return "*" in self.names or hostname(authority) in self.names


def check_action(request: Request, token: str | None, names: frozenset[str]) -> Response | None:
    """None when ``request`` may act; otherwise the refusal to send."""
    if token is None:
        return JSONResponse(
            {"error": "this dashboard is read-only: start it with MLCYCLE_ADMIN_TOKEN set"}, 403
        )
    origin = request.headers.get("origin")
    if origin is not None and "*" not in names:
        _, sep, rest = origin.partition("://")
        if not sep or hostname(rest.partition("/")[0]) not in names:
            return JSONResponse(
                {"error": f"Origin {origin!r}: cross-site actions are refused"}, 403
            )
    if request.headers.get(ACTION_HEADER) != "1":
        return JSONResponse({"error": f"actions need the {ACTION_HEADER} header"}, 403)
    media = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media != "application/json":
        return JSONResponse({"error": "actions take application/json"}, 415)
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given:
        return JSONResponse(
            {"error": "log in: actions need the admin token"},
            401,
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not hmac.compare_digest(given.encode(), token.encode()):
        return JSONResponse({"error": "wrong admin token"}, 403)
    return None
