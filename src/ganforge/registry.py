"""One small registry class; one instance per plugin kind (datasets, variants, losses, metrics...).

Plugins register themselves where they are defined::

    DATASETS = Registry("dataset")

    @DATASETS.register("sine", help="y = sin(x) on [0, 2pi]")
    def load_sine(cfg, split): ...

Looking up an unknown name raises a ``ConfigError`` listing the valid names and the closest match.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from ganforge.errors import ConfigError

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    name: str
    obj: T
    help: str


class Registry(Generic[T]):
    """A name -> object mapping with helpful errors. Not a global: each plugin kind owns one."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}

    def register(self, name: str, *, help: str = "") -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            self.add(name, obj, help=help)
            return obj

        return decorator

    def add(self, name: str, obj: T, *, help: str = "") -> None:
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        if not help:
            doc = getattr(obj, "__doc__", None) or ""
            help = doc.strip().splitlines()[0] if doc.strip() else ""
        self._entries[name] = Entry(name, obj, help)

    def get(self, name: str) -> T:
        if name not in self._entries:
            _load_plugins()  # a name we do not know may come from an installed third-party plugin
        try:
            return self._entries[name].obj
        except KeyError:
            raise ConfigError(unknown_name_message(self.kind, name, list(self._entries))) from None

    def entry(self, name: str) -> Entry[T]:
        self.get(name)
        return self._entries[name]

    def names(self) -> list[str]:
        _load_plugins()
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[Entry[T]]:
        return iter(self._entries[n] for n in self.names())

    def __len__(self) -> int:
        return len(self._entries)


def _load_plugins() -> None:
    from ganforge.plugins import load_entry_points  # lazy: plugins import the packages that own registries

    load_entry_points()


def unknown_name_message(kind: str, name: str, valid: list[str]) -> str:
    msg = f"unknown {kind} {name!r}."
    close = difflib.get_close_matches(str(name), valid, n=1, cutoff=0.5)
    if close:
        msg += f" Did you mean {close[0]!r}?"
    msg += f" Valid {kind}s: {', '.join(sorted(valid))}."
    return msg


def closest(name: str, valid: list[str]) -> str | None:
    close = difflib.get_close_matches(name, valid, n=1, cutoff=0.5)
    return close[0] if close else None


def describe(registry: Registry[Any]) -> list[tuple[str, str]]:
    return [(e.name, e.help) for e in registry]
