"""The order a grid's trials are queued in: the longest first.

When several trials run at once, workers take queued ones as they free up. In the order
the families enumerate them (trees from the most shared to the least, so the cheapest
first), the most expensive trial starts last and runs alone while the other workers idle.
Queuing the longest first, Graham's LPT rule ("Bounds on multiprocessing timing
anomalies", SIAM J. Appl. Math. 17, 1969), leaves the shortest trials for the end, so the
workers finish close together. The order is the same at any concurrency, so a grid's
trial numbers do not depend on it.

A trial's length is estimated before anything trains, from the built network: MACs per
sample x phases x epochs per phase. Progressive networks train one column per phase, so
counting every phase at the whole network's MACs overestimates them; the order only needs
the ranking to be roughly right.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch

from .arch import build_model
from .arch._cost import count_macs
from .problem import Problem
from .spaces import decode


def estimated_cost(params: Mapping[str, Any], problem: Problem) -> float:
    """MAC-epochs per training sample of the grid point ``params``; 0 when it does not build
    (the trial itself then fails fast and records why)."""
    plan = decode(params, problem)
    try:
        with torch.random.fork_rng(devices=[]):  # building draws initial weights: keep the driver's stream
            model = build_model(plan.arch, problem.backbone, problem.tasks)
            macs = count_macs(model, problem.backbone.input_shape)
    except Exception:  # noqa: BLE001  the trial reports the error with its own message
        return 0.0
    return float(macs) * len(model.phases()) * plan.train.epochs


def longest_first(points: Sequence[Mapping[str, Any]], problem: Problem) -> list[Mapping[str, Any]]:
    """``points`` by estimated cost, the most expensive first (ties keep the grid's order)."""
    costs = [estimated_cost(p, problem) for p in points]
    order = sorted(range(len(points)), key=lambda i: -costs[i])
    return [points[i] for i in order]
