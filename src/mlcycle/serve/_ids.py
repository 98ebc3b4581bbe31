"""Request ids: drawn at random for each request, or given by the client within limits.

An id the server makes is 128 random bits from the OS's secure source, so one
id tells nothing about the others (a counter would let anyone who sees one
guess the rest and post labels for them). Reading the OS's source once per
request would cost a system call each; the bits are drawn 64 KiB at a time
instead and sliced, and drawn afresh in a forked child.
"""

from __future__ import annotations

import os
import weakref

from mlcycle.errors import DataError

__all__ = ["MAX_ID_CHARS", "RequestIds", "client_id"]

MAX_ID_CHARS = 128
_ID_BYTES = 16
_BLOCK = _ID_BYTES * 4096


class RequestIds:
    """Unguessable ids, 32 hex digits like a UUID's.

    >>> ids = RequestIds()
    >>> first, second = ids.next(), ids.next()
    >>> len(first), first != second
    (32, True)
    """

    def __init__(self) -> None:
        self._pool = b""
        self._at = 0
        this = weakref.ref(self)

        def forget() -> None:  # a forked child must not hand out its parent's ids
            ids = this()
            if ids is not None:
                ids._pool = b""

        os.register_at_fork(after_in_child=forget)

    def next(self) -> str:
        at = self._at
        if at + _ID_BYTES > len(self._pool):
            self._pool, at = os.urandom(_BLOCK), 0
        self._at = at + _ID_BYTES
        return self._pool[at : at + _ID_BYTES].hex()


def client_id(value: object, where: str) -> str:
    """A request id the client gave (``where`` names it), checked: a short printable string.

    Raises:
        DataError: not a string, longer than :data:`MAX_ID_CHARS`, or holding
            characters other than printable ASCII.

    >>> client_id("order-17", "'id'")
    'order-17'
    >>> client_id(17, "'id'")
    Traceback (most recent call last):
    ...
    mlcycle.errors.DataError: 'id': expected a string, got 17
    """
    if type(value) is not str:
        raise DataError(f"{where}: expected a string, got {value!r:.40}")
    if len(value) > MAX_ID_CHARS:
        raise DataError(f"{where}: {len(value)} characters, at most {MAX_ID_CHARS} are taken")
    if not (value.isascii() and value.isprintable()):
        raise DataError(f"{where}: {value!r} holds characters other than printable ASCII")
    return value
