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


SHOWN_CHARS = 80  # an echoed value longer than this is cut: a message stays one readable line


def shown(value: object, limit: int = SHOWN_CHARS) -> str:
    """``repr(value)`` cut to ``limit`` characters, for messages that echo user input.

    ``reprlib`` stops early in long strings, lists and deep nesting, so even a value that
    expands to gigabytes (a YAML alias bomb) is shown in microseconds.
    """
    import reprlib

    brief = reprlib.Repr()
    brief.maxstring = brief.maxother = limit
    brief.maxlist = brief.maxtuple = brief.maxset = brief.maxdict = 6
    brief.maxlevel = 3
    text = brief.repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


MAX_DETAIL = 500  # characters of a user's error message repeated on the one line


class UserCodeError(ShareSearchError):
    """The user's own ``module:function`` (named by spec key ``key``) raised ``error``; the
    message is that error on one line, the traceback is kept as the cause (``--debug``)."""

    def __init__(self, key: str, name: str, error: BaseException):
        lines = str(error).strip().splitlines()
        detail = f": {lines[0][:MAX_DETAIL]}" if lines else ""
        super().__init__(f"{key} {name!r} raised {type(error).__name__}{detail} (--debug shows the traceback)")
