"""Environment variables, read in one place.

``MLCYCLE_STORE_URL``
    Overrides ``store.url`` in ``mlcycle.yaml`` (e.g. a PostgreSQL URL for a team).
``MLCYCLE_ARTIFACTS_URI``
    Overrides ``artifacts.uri``.
``MLCYCLE_ACTOR``
    The name written into the event log as who did a thing (default: the OS user).
``MLCYCLE_ADMIN_TOKEN``
    The bearer token of ``mlcycle serve``'s admin routes (never on the command
    line, where ``ps`` shows it to every user; or ``--admin-token-file``).
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Mapping


def store_url(environ: Mapping[str, str] = os.environ) -> str | None:
    return environ.get("MLCYCLE_STORE_URL") or None


def artifacts_uri(environ: Mapping[str, str] = os.environ) -> str | None:
    return environ.get("MLCYCLE_ARTIFACTS_URI") or None


def actor(environ: Mapping[str, str] = os.environ) -> str:
    if environ.get("MLCYCLE_ACTOR"):
        return environ["MLCYCLE_ACTOR"]
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry, e.g. in some containers
        return "unknown"


def admin_token(environ: Mapping[str, str] = os.environ) -> str | None:
    return environ.get("MLCYCLE_ADMIN_TOKEN") or None


def feedback_token(environ: Mapping[str, str] = os.environ) -> str | None:
    return environ.get("MLCYCLE_FEEDBACK_TOKEN") or None
