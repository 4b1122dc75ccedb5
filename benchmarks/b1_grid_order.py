"""B1, one change tried alone: a grid queued longest first against the grid's own order.

Tried on 2026-11-29 and not adopted: share-search queues a grid in the order the families
enumerate it. Graham's LPT rule ("Bounds on multiprocessing timing anomalies", SIAM J.
Appl. Math. 17, 1969) queues the longest jobs first so that parallel workers finish close
together; the tree family enumerates from the most shared tree on, so the cheapest first,
and the most expensive tree runs last and alone. A trial's length is estimated here, before
anything trains, as MACs per sample x phases x epochs per phase (``count_macs`` on the
built network).

The same 12 trees as ``b1_executor.py`` (15 epochs by default) are searched at
concurrency 2 in pairs, one search per order; the arms alternate which runs first in each
pair, so the machine's drift hits both alike. Reported per arm, medians over pairs: the
search's wall time, the idle tail (the last trial's tell minus the one before, while one
worker has nothing left to run) and Σ of the trials' own times; and per pair, the
wall-time ratio longest first / grid order.

    python benchmarks/b1_grid_order.py --quick    # tiny data, 1 pair (checks the script)
    python benchmarks/b1_grid_order.py --json benchmarks/results/b1_grid_order.json   # 3 pairs, ~8 min
"""

from __future__ import annotations

import argparse
import statistics
import sys

from _common import alternating, median_range, print_table, write_json
from b1_executor import search_run

ARMS = ("longest first", "grid order")


def estimated_cost(params, problem) -> float:
    """MAC-epochs per training sample of one grid point."""
    import torch

    from share_search.arch import build_model
    from share_search.arch._cost import count_macs
    from share_search.space.spaces import decode

    plan = decode(params, problem)
    with torch.random.fork_rng(devices=[]):  # building draws initial weights: keep the driver's stream
        model = build_model(plan.arch, problem.backbone, problem.tasks)
        macs = count_macs(model, problem.backbone.input_shape)
    return float(macs) * len(model.phases()) * plan.train.epochs


def search_once(quick: bool, epochs: int | None, longest_first: bool) -> dict:
    """One concurrency-2 search of the B1 grid in the given order: wall, idle tail, Σ time_s."""
    import share_search.engine.search as search_module
    from share_search.space.spaces import grid_points

    def by_cost(problem):  # stable: equal estimates keep the grid's order
        return sorted(grid_points(problem), key=lambda p: -estimated_cost(p, problem))

    search_module.grid_points = by_cost if longest_first else grid_points
    try:
        wall, _, times, _, timeline = search_run(quick, 2, epochs=epochs)
    finally:
        search_module.grid_points = grid_points
    return {"wall_s": wall, "idle_tail_s": timeline["idle_tail_s"], "sum_time_s": sum(times.values())}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny data, 1 epoch, 1 pair")
    ap.add_argument("--pairs", type=int, help="default 3 (quick: 1)")
    ap.add_argument("--epochs", type=int, default=None, help="epochs per trial (default 15; quick: 1)")
    ap.add_argument("--json", help="where to write the result JSON")
    args = ap.parse_args(argv)
    pairs = args.pairs or (1 if args.quick else 3)
    epochs = args.epochs or (None if args.quick else 15)

    from share_search.engine.search import start_ray

    start_ray(None)
    runs: dict[str, list[dict]] = {arm: [] for arm in ARMS}
    for p, arm in alternating(ARMS, pairs):
        run = search_once(args.quick, epochs, arm == ARMS[0])
        runs[arm].append(run)
        print(f"pair {p + 1}, {arm}: {run['wall_s']:.1f} s, idle tail {run['idle_tail_s']:.1f} s", flush=True)
    ratios = [a["wall_s"] / b["wall_s"] for a, b in zip(*runs.values())]

    def cell(arm: str, key: str) -> str:
        return median_range([r[key] for r in runs[arm]], 1)

    print_table(
        f"B1 grid order at concurrency 2: 12 trees, {epochs or 1} epochs, {pairs} pair(s), medians (range)",
        ["measure", *ARMS],
        [
            ["search wall, s", *(cell(a, "wall_s") for a in ARMS)],
            ["idle tail, s", *(cell(a, "idle_tail_s") for a in ARMS)],
            ["Σ trials' own time (time_s), s", *(cell(a, "sum_time_s") for a in ARMS)],
            ["wall ratio longest first / grid order, per pair", median_range(ratios, 3), ""],
        ],
    )
    write_json(
        "b1_grid_order" + ("_quick" if args.quick else ""),
        {"mode": "quick" if args.quick else "full", "epochs": epochs, "pairs": pairs, "runs": runs, "wall_ratios": ratios,
         "summary": {"wall_ratio_median": statistics.median(ratios),
                     **{f"{a}: {k}": statistics.median(r[k] for r in runs[a]) for a in ARMS for k in ("wall_s", "idle_tail_s", "sum_time_s")}}},
        args.json,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
