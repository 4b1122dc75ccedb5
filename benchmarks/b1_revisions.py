"""B1, two revisions of share-search side by side: does a change to the package make a search faster?

The same 12 trees as ``b1_executor.py`` are searched at concurrency 2 with the package of
two git revisions, in pairs, one search per revision; the revisions alternate which runs
first in each pair, so the machine's drift hits both alike. Each search runs in a fresh
process whose working directory is a checkout of its revision (a temporary ``git worktree``;
``.`` is this checkout as it is), so the driver and, through the job's ``PYTHONPATH``, the
Ray workers import that revision's package. The measuring code is this checkout's.

Reported per revision, medians over pairs: the search's wall time, the driver's own CPU
seconds (the ``run_search`` call, every thread), the CPU seconds of the driver and every
Ray process, and Σ of the trials' own times; per pair, the wall-time ratio head / base.

    python benchmarks/b1_revisions.py --base HEAD~1 --quick   # tiny data, 1 pair (checks the script)
    python benchmarks/b1_revisions.py --base 1a2b3c4 --head . --json benchmarks/results/b1_revisions.json   # 3 pairs, 10 epochs, ~10 min
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import HERE, alternating, median_range, package_attr, print_table, write_json

REPO = HERE.parent
MARK = "RESULT "


def one_search(quick: bool, epochs: int | None) -> dict:
    """In the child: one concurrency-2 search with the package found from the working directory."""
    sys.path.insert(0, os.getcwd())
    import share_search

    if not Path(share_search.__file__).resolve().is_relative_to(Path.cwd().resolve()):
        raise SystemExit(f"imported {share_search.__file__}, not the revision's checkout in {os.getcwd()}")
    from b1_executor import search_run
    start_ray = package_attr("start_ray", "share_search.engine.search", "share_search.search")

    os.environ["RAY_worker_niceness"] = str(os.nice(0))  # as b1_executor: trials compete like the driver
    start_ray(None)
    before = resource.getrusage(resource.RUSAGE_SELF)
    wall, cpu, times, complete, _ = search_run(quick, 2, epochs=epochs)
    after = resource.getrusage(resource.RUSAGE_SELF)
    driver = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return {"wall": wall, "driver_cpu": driver, "all_cpu": cpu, "sum_time_s": sum(times.values()), "complete": complete}


def checkout(rev: str, into: Path) -> Path:
    """A folder holding ``rev``'s tree: this checkout for ``.``, else a detached worktree."""
    if rev == ".":
        return REPO
    folder = into / rev.replace("/", "_")
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "-q", str(folder), rev], check=True)
    return folder


def run_child(tree: Path, quick: bool, epochs: int | None) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child"] + (["--quick"] if quick else []) + (["--epochs", str(epochs)] if epochs else [])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(tree), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith(MARK)]
    if done.returncode or not lines:
        raise SystemExit(f"the search with {tree} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(lines[-1][len(MARK):])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--base", help="git revision measured as the base (required)")
    ap.add_argument("--head", default=".", help="git revision measured against it; . (default) is this checkout as it is")
    ap.add_argument("--pairs", type=int, help="default 3 (quick: 1)")
    ap.add_argument("--epochs", type=int, help="epochs per trial (default 10; quick: 1)")
    ap.add_argument("--quick", action="store_true", help="tiny data, 1 epoch, 1 pair (checks the script)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--json", help="where to write the result JSON")
    args = ap.parse_args(argv)
    if args.child:
        print(MARK + json.dumps(one_search(args.quick, args.epochs)), flush=True)
        return 0
    if not args.base:
        ap.error("--base is required")
    pairs = args.pairs or (1 if args.quick else 3)
    epochs = args.epochs or (None if args.quick else 10)
    arms = {"base": args.base, "head": args.head}
    shas = {arm: subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD" if rev == "." else rev], check=True, capture_output=True, text=True).stdout.strip() for arm, rev in arms.items()}
    workdir = Path(tempfile.mkdtemp(prefix="b1-revisions-"))
    trees: dict[str, Path] = {}
    try:
        for arm, rev in arms.items():
            trees[arm] = checkout(rev, workdir)
        runs: dict[str, list[dict]] = {"base": [], "head": []}
        for p, arm in alternating(("base", "head"), pairs):
            runs[arm].append(run_child(trees[arm], args.quick, epochs))
            r = runs[arm][-1]
            print(f"pair {p + 1}, {arm} ({arms[arm]}): wall {r['wall']:.1f} s, driver CPU {r['driver_cpu']:.2f} s, {r['complete']} complete", flush=True)
    finally:
        for tree in trees.values():
            if tree != REPO:
                subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(tree)], check=False)
        shutil.rmtree(workdir, ignore_errors=True)

    ratios = [h["wall"] / b["wall"] for b, h in zip(runs["base"], runs["head"])]
    cpu_saved = [b["driver_cpu"] - h["driver_cpu"] for b, h in zip(runs["base"], runs["head"])]

    def row(name: str, key: str) -> list:
        return [name] + [median_range([r[key] for r in runs[arm]]) for arm in ("base", "head")]

    table = [
        row("search wall, s", "wall"),
        row("driver CPU, s", "driver_cpu"),
        row("driver + Ray CPU, s", "all_cpu"),
        row("Σ trials' own time_s, s", "sum_time_s"),
        row("trials completed", "complete"),
        ["wall head / base, per pair", median_range(ratios, 3), ""],
        ["driver CPU base - head, per pair, s", median_range(cpu_saved), ""],
    ]
    print_table(f"B1 grid at concurrency 2, base {arms['base']} ({shas['base']}) against head {arms['head']} ({shas['head']}), {pairs} pair(s), medians (range)",
                ["measure", f"base {shas['base']}", f"head {shas['head']}"], table)
    write_json("b1_revisions" + ("_quick" if args.quick else ""),
               {"mode": "quick" if args.quick else "full", "revisions": {arm: {"rev": arms[arm], "sha": shas[arm]} for arm in arms}, "epochs": epochs, "runs": runs,
                "wall_ratio_head_over_base": ratios, "driver_cpu_saved_s": cpu_saved, "summary": {r[0]: r[1:] for r in table}},
               args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
