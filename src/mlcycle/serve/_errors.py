"""How the serving core says no, whatever the protocol: a status, a message, headers.

The status is an HTTP status code, the common language of the protocols a
server speaks: the REST routes send it as it is, the gRPC service maps it to
its status codes (400 and 422 → ``INVALID_ARGUMENT``, 404 → ``NOT_FOUND``,
503 → ``UNAVAILABLE`` …, see :mod:`~mlcycle.serve._v2_grpc`).
"""

from __future__ import annotations

__all__ = ["ClientGone", "Refusal"]


class Refusal(Exception):
    """A request the server does not answer with a prediction: why, in the protocol's terms.

    Attributes:
        status: the HTTP status code (400 bad request, 404 unknown model, 503 overloaded…).
        message: what is wrong, naming the field or value and what was expected.
        headers: response headers that go with it (``Retry-After``, ``WWW-Authenticate``).
    """

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


class ClientGone(Exception):
    """The client disconnected before its request body arrived: nobody to answer."""
