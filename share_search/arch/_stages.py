"""A check every family that places something after chosen stages makes when it builds."""

from __future__ import annotations

from typing import Sequence


def require_stages(stages: Sequence[int], backbone, what: str) -> None:
    """A config built on a shallower backbone than it was sampled for is a clear error."""
    missing = [s for s in stages if s >= backbone.n_stages]
    if missing:
        raise ValueError(f"{what} {missing} need them to exist, but the {backbone.name} backbone has {backbone.n_stages} stages")
