"""Errors a user can act on.

Every error that comes from user input says *where* (a YAML key path, a file, a value)
and *what the rule is*; the CLI prints it on one line and exits with code 2.
"""

from __future__ import annotations


class ShareSearchError(Exception):
    """Base class: an error whose message is meant for the user, not a traceback."""


class SpecError(ShareSearchError, ValueError):
    """A spec value breaks a rule; ``path`` is the dotted key path, e.g. ``tasks.left.metric``."""

    def __init__(self, path: str, message: str):
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}" if path else message)


class DataError(ShareSearchError, ValueError):
    """Data cannot be loaded or does not fit the spec (names the file, column or label)."""


class CheckpointError(ShareSearchError):
    """An exported model folder is missing, truncated or does not match its recorded hash."""


class RunError(ShareSearchError):
    """A run folder or storage is in a state the command cannot work with."""


MAX_DETAIL = 500  # characters of a user's error message repeated on the one line


class UserCodeError(ShareSearchError):
    """The user's own ``module:function`` (named by spec key ``key``) raised ``error``; the
    message is that error on one line, the traceback is kept as the cause (``--debug``)."""

    def __init__(self, key: str, name: str, error: BaseException):
        lines = str(error).strip().splitlines()
        detail = f": {lines[0][:MAX_DETAIL]}" if lines else ""
        super().__init__(f"{key} {name!r} raised {type(error).__name__}{detail} (--debug shows the traceback)")
