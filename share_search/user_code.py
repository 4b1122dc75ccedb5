"""The one rule for importing a user's code: a ``module:function`` (a data source or a
backbone) or a plugin module that registers families, weightings and the like.

The current folder comes first on the import path, as ``python -m`` would put it, so a
module beside the spec is found whether share-search was started as ``share-search`` or
``python -m share_search.cli``; Ray's workers get the same folder on their PYTHONPATH
(``search.start_ray``). Only a spec (trusted) or a caller that says so reaches this:
loading an export never does on its own.
"""

from __future__ import annotations

import importlib
import os
import sys
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Sequence

from .errors import SpecError


def import_user_function(source: str, key: str) -> Callable[..., Any]:
    """The callable ``function`` of ``module:function``; errors name the spec ``key``."""
    module_name, sep, attr = source.partition(":")
    if not sep or not module_name or not attr:
        raise SpecError(key, f"expected module:function, got {source!r}")
    with _current_folder_first():
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:  # any failure while importing is the user's module
            raise SpecError(key, f"cannot import module {module_name!r} ({type(exc).__name__}: {exc})") from exc
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise SpecError(key, f"module {module_name!r} has no function {attr!r}")
    return fn


def import_plugins(modules: Sequence[str], key: str = "plugins") -> None:
    """Import the modules a spec lists under ``plugins`` (they register families, weightings, ...).

    Python imports a module once, so the driver and every Ray worker may each call this.
    """
    with _current_folder_first():
        for i, module in enumerate(modules):
            try:
                importlib.import_module(module)
            except Exception as exc:  # any failure while importing is the user's module
                raise SpecError(f"{key}.{i}", f"cannot import plugin module {module!r} ({type(exc).__name__}: {exc})") from exc


@contextmanager
def _current_folder_first() -> Iterator[None]:
    cwd = os.getcwd()
    added = cwd not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        yield
    finally:
        if added:
            sys.path.remove(cwd)
