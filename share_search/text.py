"""How share-search writes for people: counts with the right plural, and the rich console.

One console rule for every printed line: on a terminal rich reads its width; into a pipe
or a file there is no width to read (rich would assume 80 columns and cut the
leaderboard and the progress line short), so a fixed wide one is used.
"""

from __future__ import annotations

import sys

PIPE_WIDTH = 160


def plural(n: int, word: str, words: str | None = None) -> str:
    """``1 trial``, ``2 trials``; ``words`` for an irregular plural."""
    return f"{n:,} {word if n == 1 else (words or word + 's')}"


def console():
    """A rich Console for standard output: the terminal's width, or ``PIPE_WIDTH`` when piped."""
    from rich.console import Console

    return Console(highlight=False, width=None if sys.stdout.isatty() else PIPE_WIDTH)
