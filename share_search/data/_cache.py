"""A folder of parsed arrays, so slow-to-parse sources are read once per machine.

Parallel trials may build the same entry at once: each writes a private temporary file
and renames it into place, so a reader sees a whole file or none. An entry that does not
load or fails its check is rebuilt rather than trusted; a folder that cannot be written
only costs the parse again (with a warning).
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path
from typing import Callable

import numpy as np

CACHE_ENV = "SHARE_SEARCH_CACHE"


def cache_dir(configured: str | None) -> Path:
    """``data.cache_dir``, else ``$SHARE_SEARCH_CACHE``, else ``~/.cache/share-search``."""
    if configured:
        return Path(configured).expanduser()
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    return Path.home() / ".cache" / "share-search"


def cached_array(
    folder: Path, name: str, build: Callable[[], np.ndarray], valid: Callable[[np.ndarray], bool]
) -> np.ndarray:
    """``folder/name.npy`` if it loads and passes ``valid``, else ``build()`` written there."""
    path = folder / f"{name}.npy"
    try:
        array = np.load(path, allow_pickle=False)
        if valid(array):
            return array
    except (OSError, ValueError, EOFError):
        pass  # missing or unreadable: rebuilt below
    array = build()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                np.save(f, array, allow_pickle=False)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError as exc:  # a read-only cache costs time, not correctness
        warnings.warn(f"cannot write the data cache {path}: {exc} (set data.cache_dir or ${CACHE_ENV})", stacklevel=2)
    return array
