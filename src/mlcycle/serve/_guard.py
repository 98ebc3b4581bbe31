"""Who may call the server: the names it answers to, cross-site browsers, body types.

A server on loopback is within reach of every web page its operator opens. A
page may POST a ``text/plain`` or form body anywhere without a CORS
preflight, and DNS rebinding points the page's own name at ``127.0.0.1`` so
that even its reads are same-origin. Hence, before any route runs:

* the ``Host`` header must be a name the server answers to: the loopback
  names and the address it is bound to, plus those given with
  ``--allowed-host`` (``*``: any). Otherwise 421. A request without ``Host``
  (HTTP/1.0) passes: browsers always send one.
* a POST carrying an ``Origin`` (browsers add it to cross-site requests)
  must come from one of those names. Otherwise 403.
* a POST's body must be JSON: ``Content-Type: application/json``, or V2's
  binary extension (``application/octet-stream`` with
  ``Inference-Header-Content-Length``), or no ``Content-Type`` at all
  (tritonclient sends none; a browser that sends none also sends an
  ``Origin``). Otherwise 415.

Each check is a few dictionary lookups per request.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from mlcycle.serve._errors import Refusal

__all__ = ["LOOPBACK", "Guard", "Refusal", "allowed_hosts"]

LOOPBACK = ("localhost", "127.0.0.1", "[::1]")
_WILDCARDS = {"", "0.0.0.0", "::", "[::]"}  # bind to every interface: not a name clients use
_SEEN_MAX = 64  # raw Host values found allowed, remembered to skip parsing them again


def allowed_hosts(bind: str, extra: Iterable[str] = ()) -> tuple[str, ...]:
    """The names a server bound to ``bind`` answers to: loopback, ``bind`` itself, ``extra``.

    >>> allowed_hosts("10.0.0.5", ["models.example.com"])
    ('localhost', '127.0.0.1', '[::1]', '10.0.0.5', 'models.example.com')
    >>> allowed_hosts("0.0.0.0")
    ('localhost', '127.0.0.1', '[::1]')
    """
    names = list(LOOPBACK)
    if bind not in _WILDCARDS:
        names.append(_hostname(bind))
    names.extend(extra)
    return tuple(dict.fromkeys(n.lower() for n in names))


def _hostname(authority: str) -> str:
    """``host[:port]`` → ``host``, lower case, without a trailing dot; IPv6 keeps its brackets."""
    if authority.count(":") > 1 and not authority.startswith("["):
        authority = f"[{authority}]"  # a bare IPv6 address, as --allowed-host may give it
    if authority.startswith("["):
        end = authority.find("]")
        name = authority[: end + 1] if end > 0 else authority
    else:
        name, colon, port = authority.rpartition(":")
        if not colon or not (port.isascii() and port.isdigit()):
            name = authority
    return name.lower().removesuffix(".")


class Guard:
    """The checks, for one server's allowed names."""

    def __init__(self, allowed: Iterable[str]) -> None:
        self.names = frozenset(_hostname(n) if n != "*" else n for n in allowed)
        self.open = "*" in self.names
        self._seen: set[str] = set()

    def _allowed(self, name: str) -> bool:
        return self.open or name in self.names

    def check(self, headers: Mapping[str, str], post: bool) -> None:
        """Raise :class:`Refusal` for a request the server must not take.

        ``headers``: names in lower case. ``post``: the request is a POST.
        """
        host = headers.get("host")
        if host is not None and host not in self._seen:
            if not self._allowed(_hostname(host)):
                raise Refusal(
                    421,
                    f"Host {host!r} is not a name this server answers to "
                    f"({', '.join(sorted(self.names))}); start it with --allowed-host NAME "
                    "to add one",
                )
            if len(self._seen) < _SEEN_MAX:
                self._seen.add(host)
        if not post:
            return
        origin = headers.get("origin")
        if origin is not None and not self.open:
            _, sep, rest = origin.partition("://")
            if not sep or not self._allowed(_hostname(rest.partition("/")[0])):
                raise Refusal(
                    403,
                    f"Origin {origin!r} is not one of this server's names: "
                    "cross-site requests from a browser are refused",
                )
        ctype = headers.get("content-type")
        if ctype is None or ctype == "application/json":
            return
        media = ctype.partition(";")[0].strip().lower()
        if media == "application/json" or (
            media == "application/octet-stream" and "inference-header-content-length" in headers
        ):
            return
        raise Refusal(
            415,
            f"Content-Type {ctype!r} is not taken: send application/json (or, for V2's "
            "binary extension, application/octet-stream with Inference-Header-Content-Length)",
        )
