"""The one rule for the names of models, datasets and aliases.

Model names become folders (``.mlcycle/log/predictions/<model>/``) and file
names (``loop-<model>.lock``); dataset and model names become parts of
references (``fraud@2``) and rows in a database column of bounded length. So
every entry point (registering, parsing a reference, adding a dataset, moving
an alias) checks the same rule here, the same way on SQLite and PostgreSQL,
before anything is written:

* a name: letters, digits, ``_``, ``.`` or ``-``; not starting with ``.``
  (no ``..``, no hidden file); at most 100 characters;
* an alias: a letter, then letters, digits, ``_`` or ``-``; at most 100
  characters; not ``latest`` (a reference without an alias means the newest
  version already).

The patterns are matched with :func:`re.fullmatch`: ``$`` in ``re.match``
also matches before a trailing newline, which let ``'nl\\n'`` through.

Example:
    >>> check_name("fraud-v2.1", "model name")
    'fraud-v2.1'
    >>> check_name("..", "model name")
    Traceback (most recent call last):
    ...
    mlcycle.errors.InvalidNameError: model name '..': expected letters, digits, '_', '.' or '-', not starting with '.', at most 100 characters
"""

from __future__ import annotations

import re

from mlcycle.errors import InvalidNameError

__all__ = ["ALIAS_RULE", "MAX_NAME_LENGTH", "NAME_RULE", "check_alias", "check_name"]

MAX_NAME_LENGTH = 100
NAME_RULE = (
    f"letters, digits, '_', '.' or '-', not starting with '.', at most {MAX_NAME_LENGTH} characters"
)
ALIAS_RULE = (
    "a letter, then letters, digits, '_' or '-', "
    f"at most {MAX_NAME_LENGTH} characters, not 'latest'"
)
# ASCII only: [A-Za-z0-9] is, where \w would take any Unicode letter.
_NAME = re.compile(rf"[A-Za-z0-9_-][A-Za-z0-9_.-]{{0,{MAX_NAME_LENGTH - 1}}}")
_ALIAS = re.compile(rf"[A-Za-z][A-Za-z0-9_-]{{0,{MAX_NAME_LENGTH - 1}}}")
RESERVED_ALIASES = frozenset({"latest"})


def _shown(value: str) -> str:
    if len(value) <= 2 * MAX_NAME_LENGTH:
        return repr(value)
    return f"{value[:MAX_NAME_LENGTH]!r}… ({len(value)} characters)"


def check_name(value: object, what: str = "name") -> str:
    """``value`` if it is a valid model or dataset name; else :class:`InvalidNameError`.

    Args:
        value: the name to check.
        what: how the message calls it (``model name``, ``dataset name``).
    """
    if not isinstance(value, str) or _NAME.fullmatch(value) is None:
        shown = _shown(value) if isinstance(value, str) else repr(value)
        raise InvalidNameError(f"{what} {shown}: expected {NAME_RULE}")
    return value


def check_alias(value: object, what: str = "alias") -> str:
    """``value`` if it is a valid alias; else :class:`InvalidNameError`.

    Example:
        >>> check_alias("latest")
        Traceback (most recent call last):
        ...
        mlcycle.errors.InvalidNameError: alias 'latest': expected a letter, then letters, digits, '_' or '-', at most 100 characters, not 'latest'
    """
    if (
        not isinstance(value, str)
        or _ALIAS.fullmatch(value) is None
        or value.lower() in RESERVED_ALIASES
    ):
        shown = _shown(value) if isinstance(value, str) else repr(value)
        raise InvalidNameError(f"{what} {shown}: expected {ALIAS_RULE}")
    return value
