"""Finding plugins without hand-kept lists.

- Inside ganforge: each plugin package (``variants``, ``data``, ``models``, ``metrics``) imports every module
  it contains (``import_submodules``), and each module registers what it defines. A new file is found.
- Outside ganforge: a third-party package declares modules in the ``ganforge.plugins`` entry-point group, e.g.
  in its pyproject.toml::

      [project.entry-points."ganforge.plugins"]
      my_family = "my_package.my_family"

  Importing that module registers its variants, datasets, metrics or architectures. ``load_entry_points`` runs
  once, the first time a registry is asked for a name it does not know or for its full list.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
import warnings
from collections.abc import Iterable
from importlib.metadata import entry_points

GROUP = "ganforge.plugins"


def import_submodules(package: str, path: Iterable[str]) -> None:
    """Import every module of ``package`` (its ``__path__``), so each registers its plugins."""
    for info in sorted(pkgutil.iter_modules(path), key=lambda m: m.name):
        importlib.import_module(f"{package}.{info.name}")


@functools.cache
def load_entry_points() -> tuple[str, ...]:
    """Import the modules of every installed ``ganforge.plugins`` entry point (once); return their names.

    A plugin that fails to import is skipped with a warning naming it, so one broken package cannot take
    ganforge down with it.
    """
    loaded = []
    for ep in entry_points(group=GROUP):
        try:
            ep.load()
        except Exception as e:  # a third party's bug: report it, keep going
            warnings.warn(f"ganforge plugin {ep.name!r} ({ep.value}) failed to load: {type(e).__name__}: {e}",
                          RuntimeWarning, stacklevel=2)
            continue
        loaded.append(ep.name)
    return tuple(loaded)
