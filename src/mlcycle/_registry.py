"""A name → implementation table for one extension point, loaded lazily.

Each boundary (model kinds, drift tests, triggers, ...) has one
:class:`Registry`. Built-ins are listed by *import path* (``module:Class``),
not imported, so the spec can check a name against the table without loading
torch or scipy; the class is imported the first time :meth:`Registry.get` asks
for it. A plugin registers with the decorator, or from another package by an
entry point in the group ``mlcycle.<boundary>`` (read only when a name is not
found among the built-ins and the registered ones)::

    [project.entry-points."mlcycle.drift_tests"]
    energy = "my_package.drift:EnergyTest"

Example:
    >>> shapes: Registry[type] = Registry("shape", "mlcycle.shapes", {"dict": "builtins:dict"})
    >>> @shapes.register("list")
    ... class MyList(list): ...
    >>> shapes.names(), shapes.get("dict")
    (('dict', 'list'), <class 'dict'>)
    >>> shapes.get("tuple")
    Traceback (most recent call last):
    ...
    mlcycle.errors.SpecError: unknown shape 'tuple'; registered: dict, list
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Generic, TypeVar

from mlcycle.errors import MlcycleError, SpecError

__all__ = ["Registry"]

T = TypeVar("T")


class Registry(Generic[T]):
    """One extension point: names → implementations.

    Args:
        boundary: what an entry is, for messages (``drift test``).
        group: the entry-point group read for plugins of other packages.
        builtins: name → ``module:attribute`` of the implementations mlcycle ships.
        base: ``module:attribute`` of the abstract base every entry must subclass
            (checked when an entry is first loaded), or None.
        error: the error raised for an unknown name (a :class:`~mlcycle.errors.SpecError`
            unless the boundary reads input, like data sources).

    ``name in registry``, ``registry[name]`` (the same as :meth:`get`),
    ``len`` and iteration over :meth:`names` work as on a mapping.
    """

    def __init__(
        self,
        boundary: str,
        group: str,
        builtins: Mapping[str, str] | None = None,
        *,
        base: str | None = None,
        error: type[MlcycleError] = SpecError,
    ) -> None:
        self.boundary = boundary
        self.group = group
        self._paths: dict[str, str] = dict(builtins or {})
        self._loaded: dict[str, T] = {}
        self._base = base
        self._error = error
        self._entry_points: dict[str, EntryPoint] | None = None

    def register(self, name: str, *, replace: bool = False) -> Callable[[T], T]:
        """A decorator that registers its target under ``name``.

        Raises:
            SpecError: ``name`` is taken (pass ``replace=True`` to override it).
        """
        if not name or not isinstance(name, str):
            raise SpecError(f"{self.boundary} name {name!r}: expected a non-empty string")

        def decorate(target: T) -> T:
            if not replace and (name in self._paths or name in self._loaded):
                raise SpecError(
                    f"{self.boundary} {name!r} is registered already; "
                    "pass replace=True to override it"
                )
            self._check_base(name, target)
            self._paths.pop(name, None)
            self._loaded[name] = target
            return target

        return decorate

    def unregister(self, name: str) -> None:
        """Forget ``name`` (tests that register a toy implementation clean up with it)."""
        self._loaded.pop(name, None)
        self._paths.pop(name, None)

    def get(self, name: str) -> T:
        """The implementation registered as ``name``, imported on first use.

        Raises:
            SpecError: (or the registry's ``error``) no such name; the message lists
                every registered name.
        """
        if name in self._loaded:
            return self._loaded[name]
        path = self._paths.get(name)
        if path is not None:
            target: T = _import(path)
        else:
            entry = self._plugins().get(name)
            if entry is None:
                raise self._error(self.unknown(name))
            target = entry.load()
        self._check_base(name, target)
        self._loaded[name] = target
        return target

    def names(self) -> tuple[str, ...]:
        """Every registered name, sorted: built-ins, registered, then entry points."""
        return tuple(sorted({*self._paths, *self._loaded, *self._plugins()}))

    def unknown(self, name: object) -> str:
        """The message for a name nobody registered: what was asked, and what there is."""
        return f"unknown {self.boundary} {name!r}; registered: {', '.join(self.names())}"

    def check(self, name: str) -> str:
        """``name`` if registered, else :class:`ValueError` listing the names (for pydantic)."""
        if name in self._paths or name in self._loaded or name in self._plugins():
            return name
        raise ValueError(f"unknown {self.boundary}; registered: {', '.join(self.names())}")

    def _plugins(self) -> dict[str, EntryPoint]:
        if self._entry_points is None:
            self._entry_points = {ep.name: ep for ep in entry_points(group=self.group)}
        return self._entry_points

    def _check_base(self, name: str, target: Any) -> None:
        if self._base is None:
            return
        base = _import(self._base)
        if not (isinstance(target, type) and issubclass(target, base)):
            raise SpecError(
                f"{self.boundary} {name!r}: {target!r} is not a subclass of "
                f"{base.__module__}.{base.__qualname__}"
            )

    def __getitem__(self, name: str) -> T:
        return self.get(name)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (
            name in self._paths or name in self._loaded or name in self._plugins()
        )

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    def __repr__(self) -> str:
        return f"<Registry of {self.boundary}s: {', '.join(self.names())}>"


def _import(path: str) -> Any:
    module, _, attribute = path.partition(":")
    return getattr(importlib.import_module(module), attribute)
