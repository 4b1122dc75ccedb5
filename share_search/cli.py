"""The ``share-search`` command: ``init``, ``validate``, ``run``, ``leaderboard``, ``export``,
``report``, ``dashboard``.

``main(argv) -> int``: a user error prints one line naming the key, file or value and
returns 2 (``--debug`` shows the traceback); nothing runs at import time.
"""

from __future__ import annotations

import argparse
import math
import sys
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Sequence

from .errors import ShareSearchError
from .runs.preflight import check_output_file
from .text import plural

EXIT_USER_ERROR = 2
EXIT_INTERNAL_FAILURE = 3  # a trial failed inside share-search itself: a bug to report


def _console():
    """Rich output; when piped (no terminal width to read) wide enough for the leaderboard."""
    from .text import console

    return console()


# --------------------------------------------------------------------------- init / validate
def cmd_init(args) -> int:
    path = Path(args.path)
    if path.is_dir():
        raise ShareSearchError(f"init: {path} is a folder; give the spec file to write, e.g. {path / 'search.yaml'}")
    if path.exists() and not args.force:
        raise ShareSearchError(f"{path} already exists; pass --force to overwrite it")
    text = resources.files("share_search").joinpath("starter.yaml").read_text()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text.replace("name: my-search", f"name: {_yaml_name(_slug(path.stem))}"))
    except OSError as exc:
        raise ShareSearchError(f"init: cannot write {path}: {exc.strerror or exc}") from None
    print(f"wrote {path}; next: share-search validate {path} && share-search run {path}")
    return 0


def _slug(text: str) -> str:
    """A run name from a file name, by the spec's own rule (ASCII letters and digits first)."""
    from .spec.model import MAX_NAME_LENGTH, name_problem

    out = "".join(c if (c.isascii() and c.isalnum()) or c in "_.-" else "-" for c in text)
    out = out.lstrip("_.-")[:MAX_NAME_LENGTH].rstrip("-.")
    return out if out and name_problem(out) is None else "search"


def _yaml_name(name: str) -> str:
    """``name`` as the spec loader reads it back as that string (``yes``, ``123``, ``1e3`` quoted)."""
    from .spec.model import read_yaml

    return name if read_yaml(f"name: {name}") == {"name": name} else f'"{name}"'


def _data_file_lines(source) -> list[str]:
    """One line per data file the spec names, as read (a spec's relative paths start from its folder)."""
    if isinstance(source, dict):  # one file per split
        return [f"data file ({split}): {file}" for split, file in source.items()]
    return [f"data file: {source}"] if Path(source).is_absolute() else []


def cmd_validate(args) -> int:
    from rich.table import Table

    from .train.problem import load_problem
    from .space.spaces import check_grid, grid_points, space_sizes
    from .spec.model import load_spec

    spec = load_spec(args.spec)
    check_grid(spec)
    problem = load_problem(spec)
    con = _console()
    con.print(f"[bold]{spec.name}[/]: spec is valid (seed {spec.seed})")
    d = problem.data
    sizes = d.sizes
    if d.manifest is None:
        for line in _data_file_lines(spec.data.source):
            con.print(line, markup=False, highlight=False)
    con.print(f"data [bold]{d.name}[/]: input shape {d.input_shape}; train {sizes['train']}, val {sizes['val']}, test {sizes['test']}")
    for split, origin in d.split_origin.items():
        con.print(f"  {split}: {origin}", markup=False, highlight=False)
    if d.manifest is not None:
        _print_manifest(con, d.manifest)
    if spec.data.augment is not None:
        from .data.augment import describe_augment

        con.print(f"augmentation: {describe_augment(spec.data.augment)}", markup=False, highlight=False)
    t = Table(title="tasks", title_justify="left")
    for col in ("task", "label", "type", "outputs", "metric", "direction", "labelled (train)"):
        t.add_column(col)
    import numpy as np

    for task in problem.tasks:
        if hasattr(d.train, "y"):
            y = d.train.y[task.label]
            labelled = f"{int((~np.isnan(y)).reshape(len(y), -1).any(axis=1).sum())}/{len(y)}"
        else:
            labelled = "streamed, not counted"
        t.add_row(task.name, task.label, task.type, str(task.n_outputs), ", ".join(task.metrics), "higher is better" if task.higher_is_better else "lower is better", labelled)
    con.print(t)
    b = problem.backbone
    t = Table(title=f"backbone {b.name} ({plural(b.n_stages, 'stage')})", title_justify="left")
    t.add_column("stage")
    t.add_column("output shape")
    t.add_column("parameters")
    for i, (stage, shape) in enumerate(zip(b.build_stages(), b.stage_shapes)):
        t.add_row(str(i), str(shape), f"{sum(p.numel() for p in stage.parameters()):,}")
    con.print(t)
    if b.weights_note:
        con.print(f"backbone.weights: {b.weights_note}", soft_wrap=True)
    t = Table(title="sharing families", title_justify="left")
    t.add_column("family")
    t.add_column("architectures")
    t.add_column("options")
    for name, size in space_sizes(problem).items():
        t.add_row(name, f"{size:,}", spec.families[name].model_dump_json())
    con.print(t)
    searched = spec.train.searched()
    fixed = {k: p.value for k, p in spec.train.params().items() if p.is_fixed}
    con.print("train: fixed " + ", ".join(f"{k}={v}" for k, v in fixed.items()))
    if searched:
        con.print("train: searched " + "; ".join(f"{k}: {p.describe()}" for k, p in searched.items()))
    con.print("train: " + spec.train.features(), markup=False, highlight=False)
    s = spec.search
    con.print(f"search: sampler {s.sampler}, objective {s.objective}{' + ' + s.cost if s.cost else ''}, delta_m {s.delta_m}, {s.budget()}, concurrency {s.concurrency}, resources {s.resources.model_dump()}")
    if s.sampler == "grid":
        con.print(f"grid: {plural(len(grid_points(problem)), 'architecture/training combination')}")
    return 0


def _print_manifest(con, manifest) -> None:
    """A folder source as the manifest pass found it: its fields with their kinds, in memory or streamed."""
    from rich.markup import escape
    from rich.table import Table

    con.print(f"data folder: {escape(manifest.root)}")
    t = Table(title="fields", title_justify="left")
    for col in ("field", "kind", "stored", "read as", "dtype", "files"):
        t.add_column(col)
    for info in manifest.fields.values():
        kind = info.kind + (" (input)" if info.name == manifest.input else "") + (f", {info.classes} classes" if info.classes else "")
        t.add_row(info.name, kind, str(info.stored_shape), str(info.shape), info.dtype, f"*{info.suffix}")
    con.print(t)
    con.print(f"data held: {escape(manifest.memory)}")


# --------------------------------------------------------------------------- run
def cmd_run(args) -> int:
    from .engine.runner import run_search
    from .spec.model import load_spec

    spec = load_spec(args.spec)
    spec = spec.with_search(trials=args.trials, concurrency=args.concurrency, sampler=args.sampler, out=args.out)
    con = _console()

    def on_phase(phase: str, n: int) -> None:
        what = "reference trial" if phase == "references" else "trial"
        con.print(f"{phase}: {plural(n, what)}" + (" (single-task networks, hard sharing)" if phase == "references" else ""))

    outcome = run_search(spec, resume=args.resume, address=args.address, show_progress=not args.quiet, on_phase=on_phase)
    _print_board(con, outcome.board, outcome.problem.task_names, rows=10)
    _print_separation(con, outcome.board)
    _print_race(con, outcome.board)
    c = outcome.counts
    con.print(f"trials this run: {c['complete']} complete, {c['pruned']} pruned, {c['failed']} failed")
    _print_duplicates(con, c)
    failed = outcome.board[outcome.board["state"] == "FAIL"]
    for _, row in failed.iterrows():
        con.print(f"  trial {row['trial']} failed: {row['fail_reason']}")
    internal = _print_failure_origins(con, outcome.failure_origins, outcome.run_dir)
    con.print(f"run folder: {outcome.run_dir}")
    con.print(f"  study     : {outcome.storage_shown if outcome.problem.spec.search.storage else outcome.run_dir / 'study.db'}  (share-search dashboard {outcome.run_dir})")
    con.print(f"  leaderboard: {outcome.run_dir / 'leaderboard.csv'}")
    for path in outcome.exported:
        con.print(f"  exported  : {path}")
    ranked = int(outcome.board["rank"].notna().sum())
    if internal:
        return EXIT_INTERNAL_FAILURE
    return 0 if ranked or c["complete"] else 1


def _print_duplicates(con, counts: dict[str, int]) -> None:
    """The run summary's lines on re-proposals: how many were told an earlier result instead of
    being trained, and whether the search ended because the sampler proposed nothing new."""
    if counts.get("duplicates"):
        con.print(f"re-proposals: {plural(counts['duplicates'], 'architecture')} proposed again, not retrained "
                  "(told the earlier trial's result; not counted against search.trials)")
    if counts.get("exhausted"):
        con.print("search ended early: the sampler proposed only architectures already trained "
                  "(the space may hold fewer architectures than search.trials)")


def _print_failure_origins(con, origins: dict[int, str], run_dir) -> list[int]:
    """Which failures came from the user's code, data or values and which from share-search
    itself; returns the latter (they make the run exit non-zero)."""
    if not origins:
        return []
    internal = [n for n, origin in origins.items() if origin == "internal"]
    con.print(f"failures: {len(origins) - len(internal)} from your code, data or values, {len(internal)} inside share-search")
    if internal:
        listed = ", ".join(str(n) for n in internal)
        con.print(f"  share-search failed in trial(s) {listed}: a bug in share-search, not in your spec; "
                  f"tracebacks: share-search leaderboard {run_dir} --failures")
    return internal


def _print_failures(study) -> None:
    """``leaderboard --failures``: each failed trial with its reason, origin and traceback."""
    from .runs.study import failed_trials

    failed = failed_trials(study)
    print(plural(len(failed), "failed trial"))
    for t in failed:
        a = t.user_attrs
        role = f" ({a['role']})" if a.get("role") else ""
        print(f"\ntrial {t.number}{role}: {a.get('arch') or a.get('family') or 'no architecture'}")
        print(f"  origin : {a.get('fail_origin') or 'unknown (recorded before origins were)'}")
        print(f"  reason : {a.get('fail_reason') or 'no reason recorded'}")
        trace = a.get("fail_traceback")
        print("  traceback:" if trace else "  traceback: none recorded")
        for line in (trace or "").rstrip().splitlines():
            print(f"    {line}")


def _print_board(con, board, task_names, rows: int | None = None) -> None:
    from rich.markup import escape
    from rich.table import Table

    from .runs.rank import board_statement

    t = Table(title="leaderboard (validation metrics)", title_justify="left")
    cols = ["rank", "trial", "family", "arch", *[f"val.{n}" for n in task_names], "delta_m", "params", "macs", "time_s", "state"]
    for c in cols:
        t.add_column(c.replace("val.", ""), overflow="fold")
    shown = board if rows is None else _top_and_each_family(board, rows)
    for _, r in shown.iterrows():
        t.add_row(*[escape(_family_and_role(r) if c == "family" else _cell(r.get(c)) + _se_cell(r, c)) for c in cols])  # summaries hold [brackets], not markup
    con.print(t)
    con.print(f"[dim]{escape(board_statement(board))}[/]")
    if "n_seeds" in board and (board["n_seeds"].fillna(0) > 1).any():
        from .runs.uncertainty import REPEATS_STATEMENT, TIE_TEST

        con.print(f"[dim]{escape(REPEATS_STATEMENT)} {escape(TIE_TEST)}[/]")


def _print_separation(con, board) -> None:
    """The run summary's one line on the pick: is the winner told apart from the runner-up by its seeds?"""
    from rich.markup import escape

    from .runs.uncertainty import separation_line

    line = separation_line(board)
    if line:
        con.print(f"winner: {escape(line)}", soft_wrap=True)


def _print_race(con, board) -> None:
    """The run summary's line on the confirmation race (``search.confirm``): who raced, who was dropped, what it cost."""
    from rich.markup import escape

    standing = board.attrs.get("race")
    if standing is not None:
        con.print(f"race: {escape(standing.line())}", soft_wrap=True)


def _family_and_role(row) -> str:
    """The family, and the role of a reference trial: it is ranked like any trial, but not searched."""
    from .space.spaces import ROLE_HARD_SHARING, ROLE_SINGLE_TASK

    role = {ROLE_SINGLE_TASK: "single-task baseline", ROLE_HARD_SHARING: "hard-sharing reference"}.get(row.get("role") or "")
    return f"{_cell(row.get('family'))} ({role})" if role else _cell(row.get("family"))


def _top_and_each_family(board, rows: int):
    """The first ``rows`` rows, plus the best row of every family not among them."""
    import pandas as pd

    top = board.head(rows)
    missing = board[~board["family"].isin(set(top["family"]))].drop_duplicates("family")
    return top if missing.empty else pd.concat([top, missing])


def _se_cell(row, column: str) -> str:
    """`` ± se`` beside a mean over seeds (nothing with one seed)."""
    se = row.get(f"{column}.se")
    return "" if se is None or _cell(se) == "-" else f" ± {se:.2g}"


def _cell(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        if math.isnan(v):
            return "-"
        return f"{v:.4f}" if abs(v) < 1000 else f"{v:,.0f}"
    try:
        import pandas as pd

        if pd.isna(v):
            return "-"
    except (TypeError, ValueError):
        pass
    return f"{v:,}" if isinstance(v, int) else str(v)


# --------------------------------------------------------------------------- after a run
def _check_top(top: int) -> None:
    if top < 1:
        raise ShareSearchError(f"--top must be >= 1, got {top}")


def cmd_leaderboard(args) -> int:
    from .runs.run_folder import open_run

    if args.output:
        check_output_file(Path(args.output), "--output")
    if args.failures and (args.output or args.format != "table"):
        raise ShareSearchError("--failures prints the failed trials as text; leave out --format and --output")
    run = open_run(args.run)  # the study holds all a leaderboard needs: nothing the folder names is imported
    if args.failures:
        _print_failures(run.study)
        return 0
    board = run.leaderboard(rank_by=args.rank_by, budget=args.budget)
    fmt = args.format
    if fmt == "table":
        _print_board(_console(), board, run.task_names)
        return 0
    if fmt == "csv":
        text = board.to_csv(index=False)
    elif fmt == "json":
        text = board.to_json(orient="records", indent=2)
    else:
        if not args.output:
            raise ShareSearchError("--format parquet writes a binary file; give it with --output FILE")
        _write_output(args.output, lambda path: board.to_parquet(path, index=False))
        print(f"wrote {args.output}")
        return 0
    if args.output:
        _write_output(args.output, lambda path: path.write_text(text))
        print(f"wrote {args.output}")
    else:
        sys.stdout.write(text)
    return 0


def cmd_export(args) -> int:
    from .runs.run_folder import open_run

    _check_top(args.top)
    run = open_run(args.run)
    print(run.reload_notice, flush=True)  # said before any of it is loaded or refused
    for path in run.export(args.top, rank_by=args.rank_by, budget=args.budget, trust_code=args.trust_code):
        print(f"exported {path}")
    return 0


def cmd_report(args) -> int:
    from .runs.run_folder import open_run

    _check_top(args.top)
    if args.out:
        check_output_file(Path(args.out), "--out")
    with _writing(args.out or Path(args.run) / "report.html", "--out"):
        print(f"wrote {open_run(args.run, trust_code=args.trust_code).report(args.out, top=args.top)}")
    return 0


def _write_output(output: str, write) -> None:
    """``leaderboard --output``: missing folders above the file are made, as for a report."""
    path = Path(output)
    with _writing(path, "--output"):
        path.parent.mkdir(parents=True, exist_ok=True)
        write(path)


@contextmanager
def _writing(path, flag: str):
    """A failed write the checks could not foresee (disk full, a race) is still one line naming ``flag``."""
    try:
        yield
    except OSError as exc:
        raise ShareSearchError(f"{flag}: cannot write {path} ({exc.strerror or type(exc).__name__})") from exc


def cmd_dashboard(args) -> int:
    from .runs.dashboard import make_server, serve_until_stopped, url_of

    server = make_server(args.run, args.port, allow_writes=args.allow_writes)
    mode = "writable: the study can be changed or deleted from the browser" if args.allow_writes else "read-only; --allow-writes lets it change the study"
    print(f"optuna-dashboard for {Path(args.run).resolve()} at {url_of(server)} ({mode}; Ctrl-C stops it)", flush=True)
    serve_until_stopped(server)
    return 0


# --------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    p = argparse.ArgumentParser(prog="share-search", description="Search how tasks should share a network.")
    p.add_argument("--version", action="version", version=f"share-search {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("init", help="write a commented starter spec")
    s.add_argument("path")
    s.add_argument("--force", action="store_true", help="overwrite an existing file")
    s.set_defaults(func=cmd_init)

    s = sub.add_parser("validate", help="check a spec and print what it describes (loads its data and backbone, running any module:function it names)")
    s.add_argument("spec")
    s.set_defaults(func=cmd_validate)

    s = sub.add_parser("run", help="search: sample, train in parallel, rank, export")
    s.add_argument("spec")
    s.add_argument("--out", help="run folder (default runs/<spec name>)")
    s.add_argument("--trials", type=int, help="total trials, the reference trials included")
    s.add_argument("--concurrency", type=int, help="trials trained at once")
    s.add_argument("--sampler", help="tpe, random, nsga2, grid, or a sampler a plugin registers")
    s.add_argument("--resume", action="store_true", help="continue the run in the run folder")
    s.add_argument("--address", help="join an existing Ray cluster (e.g. 10.0.0.1:6379 or auto)")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_run)

    for name, func, help_ in (("leaderboard", cmd_leaderboard, "rank the trials of a run"), ("export", cmd_export, "export the top architectures of a run")):
        s = sub.add_parser(name, help=help_)
        s.add_argument("run", help="run folder")
        s.add_argument("--rank-by", default="delta_m", help="delta_m (default), pareto, or a task name")
        s.add_argument("--budget", help="keep architectures within a budget, e.g. params<=100000 or macs<=2e6")
        if name == "leaderboard":
            s.add_argument("--format", choices=("table", "csv", "parquet", "json"), default="table")
            s.add_argument("--output", help="write to this file instead of the terminal")
            s.add_argument("--failures", action="store_true", help="list the failed trials: reason, origin (your code or share-search) and traceback")
        else:
            s.add_argument("--top", type=int, default=1)
            s.add_argument("--trust-code", action="store_true", help="run the data or backbone module:function and import the plugins the run folder's spec names (export reloads them)")
        s.set_defaults(func=func)

    s = sub.add_parser("report", help="write a self-contained HTML report of a run")
    s.add_argument("run", help="run folder")
    s.add_argument("--out", help="HTML file to write (default <run>/report.html)")
    s.add_argument("--top", type=int, default=3, help="architectures drawn and given learning curves (default 3)")
    s.add_argument("--trust-code", action="store_true", help="import the plugins the run folder's spec names (to draw the families they register)")
    s.set_defaults(func=cmd_report)

    s = sub.add_parser("dashboard", help="optuna-dashboard on a run's study, on 127.0.0.1")
    s.add_argument("run", help="run folder")
    s.add_argument("--port", type=int, default=8080, help="port on 127.0.0.1 (default 8080; 0 picks a free one)")
    s.add_argument("--allow-writes", action="store_true", help="let the dashboard change the study (notes, deletion); read-only without it")
    s.set_defaults(func=cmd_dashboard)
    for s in sub.choices.values():  # --debug after the subcommand too; SUPPRESS keeps one given before it
        s.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
    return p


def _quiet_libraries() -> None:
    """Optuna's per-trial info lines and experimental-feature warnings are noise on a terminal."""
    import warnings

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _quiet_libraries()
    try:
        return int(args.func(args) or 0)
    except ShareSearchError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt as exc:  # a run that kept nothing says so in the exception
        print(f"interrupted; {str(exc) or 'continue with --resume'}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
