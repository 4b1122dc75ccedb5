"""The Python face of a run folder: ``open_run(path)`` reads a run back (``engine.runner.run`` makes one).

A ``Run`` is a run folder and its Optuna study. Reading it (leaderboard, failures, report)
uses the study alone, so it is safe on a folder from anyone; ``export`` rebuilds networks
and so reloads the data and backbone the folder's spec names (a ``module:function`` only
with ``trust_code=True``). The CLI's ``leaderboard``, ``export`` and ``report`` call these
same methods. Nothing here imports Ray.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import RunError, ShareSearchError
from ..spec.model import Spec
from .report import DEFAULT_TOP

if TYPE_CHECKING:
    import optuna
    import pandas as pd

SPEC_FILE = "spec.resolved.yaml"
FAILURE_COLUMNS = ("trial", "family", "arch", "fail_reason")


class Run:
    """A finished (or stopped) search: its folder, its resolved spec and its study.

    ``Run(path)`` opens an existing run folder; a missing folder, or one that holds no run,
    raises ``RunError``. ``trust_code`` imports the ``plugins`` its spec names (families,
    weightings, ... registered there), which a run folder from someone else should not get.
    """

    def __init__(self, path: str | Path, trust_code: bool = False):
        self.path = Path(path).resolve()
        self._open(trust_code)

    def _open(self, trust_code: bool) -> None:
        from .study import load_run_study

        study, spec = load_run_study(self.path, trust_code)
        self.study: optuna.Study = study
        self.spec: Spec = spec
        self.trust_code = trust_code

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r}, study={self.study.study_name!r})"

    @property
    def task_names(self) -> list[str]:
        """The tasks in the study's order (read from the study, not the data)."""
        from .report import study_tasks

        return [t.name for t in study_tasks(self.study)]

    def leaderboard(self, rank_by: str = "delta_m", budget: str | None = None) -> pd.DataFrame:
        """Every trial ranked on validation metrics, best first (as ``share-search leaderboard``).

        ``rank_by``: ``delta_m``, ``pareto`` or a task name; ``budget``: e.g. ``params<=100000``.
        """
        from .report import study_leaderboard

        return study_leaderboard(self.study, rank_by=rank_by, budget=budget)

    def failures(self) -> pd.DataFrame:
        """The trials that failed, with the reason each one recorded."""
        board = self.leaderboard()
        return board.loc[board["state"] == "FAIL", list(FAILURE_COLUMNS)].reset_index(drop=True)

    @property
    def reload_notice(self) -> str:
        """What ``export`` loads and may run, said before it does (a run folder may come from anyone)."""
        return (f"export reloads the data and backbone named in {self.path / SPEC_FILE}: "
                f"data.source {self.spec.data.source!r}, backbone.name {self.spec.backbone.name!r}")

    def export(self, top: int = 1, rank_by: str = "delta_m", budget: str | None = None, trust_code: bool = False) -> list[Path]:
        """Export the ``top`` ranked architectures to ``export/rank-<k>/`` with their test
        metrics; returns the folders. Reloads the data and backbone the run's spec names and
        runs a ``module:function`` among them only with ``trust_code=True``."""
        from .dashboard import annotate_study
        from .export import export_ranked
        from .record import study_records
        from .study import delta_m_convention_of, leaderboard_of

        if isinstance(top, bool) or not isinstance(top, int) or top < 1:
            raise RunError(f"top must be an integer >= 1, got {top!r}")
        if trust_code and not self.trust_code:
            self._open(trust_code=True)  # the spec's plugins register what export rebuilds
        problem = self._problem(trust_code)
        records = study_records(self.study)
        board = leaderboard_of(records, problem.tasks, rank_by=rank_by, budget=budget, convention=delta_m_convention_of(self.study))
        exported = export_ranked(self.path, problem, board, records, top)
        annotate_study(self.study, self.path, board, exported)  # keep the study note and export artifacts in step
        return exported

    def _problem(self, trust_code: bool):
        from ..train.problem import load_problem, user_code_named

        code = user_code_named(self.spec)
        if code and not trust_code:
            named = ", ".join(f"{key} {value!r}" for key, value in code.items())
            raise ShareSearchError(f"{self.path / SPEC_FILE} names code that export would import and run ({named}); "
                                   "pass trust_code=True (--trust-code) if this run folder and that code are yours")
        return load_problem(self.spec)

    def report(self, out: str | Path | None = None, top: int = DEFAULT_TOP) -> Path:
        """Write the HTML report (``report.html`` in the run folder, or ``out``); returns its path.
        ``top`` architectures are drawn and given learning curves."""
        from .dashboard import artifact_dir
        from .report import render_html, report_data

        if isinstance(top, bool) or not isinstance(top, int) or top < 1:
            raise RunError(f"top must be an integer >= 1, got {top!r}")
        path = Path(out) if out else self.path / "report.html"
        text = render_html(report_data(self.study, top=top, artifact_dir=artifact_dir(self.path)))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path


def open_run(path: str | Path, trust_code: bool = False) -> Run:
    """Open an existing run folder (``RunError`` when it is missing or holds no run);
    ``trust_code`` imports the plugins its spec names."""
    return Run(path, trust_code)

