"""Checks made before a command writes anything: where its output goes, and the device.

A command that would fail half-way (a folder it cannot make, a GPU that is not there) is
stopped here, with the flag or key at fault named, while nothing has been created yet.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ..errors import ShareSearchError


def nearest_existing(path: Path) -> Path:
    """``path`` itself if it exists, else its closest ancestor that does."""
    path = Path(os.path.abspath(path))
    while not os.path.lexists(path) and path != path.parent:
        path = path.parent
    return path


def check_folder_can_be_made(folder: Path, flag: str) -> None:
    """``folder`` exists as a folder, or can be made: no file in the way and write access
    where it would be made. Writes nothing that outlives the check."""
    folder = Path(os.path.abspath(folder))
    if os.path.lexists(folder) and not folder.is_dir():
        raise ShareSearchError(f"{flag}: {folder} exists and is not a folder")
    _check_writable_place(folder, nearest_existing(folder), flag, "cannot be written" if folder.is_dir() else "cannot be made")


def check_output_file(path: Path, flag: str) -> None:
    """A file the user asked for: not a folder, and a place where it can be written
    (missing folders above it are made when it is written)."""
    path = Path(os.path.abspath(path))
    if path.is_dir():
        raise ShareSearchError(f"{flag}: {path} is a folder; give the path of a file to write")
    _check_writable_place(path, nearest_existing(path.parent), flag, "cannot be written")


def _check_writable_place(target: Path, base: Path, flag: str, what: str) -> None:
    """``base``, the existing folder ``target`` would be written under, takes new entries."""
    if not base.is_dir():
        raise ShareSearchError(f"{flag}: {target} {what}: {base} is not a folder")
    try:  # a real attempt: permission bits say nothing to root, nor about read-only mounts
        os.rmdir(tempfile.mkdtemp(prefix=".share-search-check-", dir=base))
    except OSError as exc:
        raise ShareSearchError(f"{flag}: {target} {what}: no write access to {base} ({exc.strerror or type(exc).__name__})") from None


def check_device(name: str, precision: str = "fp32") -> None:
    """The trials' ``train.device`` exists on this machine (a local run trains here) and takes ``train.precision``."""
    from ..train.loop import resolve_device
    from ..train.precision import check_precision

    check_precision(precision, resolve_device(name))  # each raises naming its key
