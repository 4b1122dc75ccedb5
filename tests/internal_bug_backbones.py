"""A user backbone (``tests.internal_bug_backbones:mlp_breaking_share_search``) that plants a
real bug in share-search itself, for the tests of failure origins.

A correct backbone cannot make share-search raise, so this one breaks share-search the way
a bug would: in the process that builds it (a trial's worker, and the driver, which builds
it once to measure the stages), share-search's MAC counter is replaced by another
share-search function that takes other arguments. The trial then raises inside
share-search's own code (``share_search/engine/trial.py``), with no frame of the user's on the
stack, exactly as a wrong call in share-search would.
"""

from __future__ import annotations

from typing import Sequence

from torch import nn

import share_search.engine.trial
from share_search.arch.backbones import mlp


def mlp_breaking_share_search(input_shape: Sequence[int], widths: Sequence[int] = (16,)) -> list[nn.Module]:
    share_search.engine.trial.count_macs = share_search.engine.trial.val_from_result  # (tasks, result), called as (model, shape)
    return mlp(input_shape, widths)
