"""Helpers the benchmark scripts share: machine facts, medians, tables, JSON.

Benchmarks are scripts, never imported by the package; this file is imported only by
the scripts next to it (``python benchmarks/bX_....py`` puts this folder on sys.path).
"""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any, Iterable, Sequence

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def machine() -> dict[str, Any]:
    """Where a figure came from: CPU, cores, load, library versions."""
    import torch

    info: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpus": os.cpu_count(),
        "load_avg_1_5_15": [round(x, 2) for x in os.getloadavg()],
        "torch": torch.__version__,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
    for name in ("ray", "optuna"):
        try:
            info[name] = __import__(name).__version__
        except ImportError:
            info[name] = None
    return info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def median(values: Iterable[float]) -> float:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else float("nan")


def spread(values: Sequence[float]) -> tuple[float, float]:
    """(min, max): the range over repeats, shown next to the median."""
    values = [v for v in values if v is not None]
    return (min(values), max(values)) if values else (float("nan"), float("nan"))


def median_range(values: Sequence[float], digits: int = 2) -> str:
    """``median (min-max)``: one table cell for a measure repeated over pairs or repeats."""
    lo, hi = spread(values)
    return f"{median(values):.{digits}f} ({lo:.{digits}f}-{hi:.{digits}f})"


def alternating(arms: Sequence[str], pairs: int) -> Iterable[tuple[int, str]]:
    """(pair, arm) in run order: the arms swap which goes first in every other pair, so a
    drift of the machine's speed hits both alike."""
    for p in range(pairs):
        for arm in arms if p % 2 == 0 else arms[::-1]:
            yield p, arm


def fmt(value: Any, digits: int = 2) -> str:
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def print_table(title: str, header: Sequence[str], rows: Sequence[Sequence[Any]], digits: int = 2) -> str:
    """A Markdown table (readable in a terminal, pasteable into the README); returns it too."""
    cells = [[fmt(v, digits) for v in row] for row in rows]
    widths = [max(len(str(h)), *(len(r[i]) for r in cells)) if cells else len(str(h)) for i, h in enumerate(header)]
    lines = [
        "| " + " | ".join(str(h).ljust(w) for h, w in zip(header, widths)) + " |",
        "|" + "|".join("-" * (w + 2) for w in widths) + "|",
        *("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |" for r in cells),
    ]
    text = f"\n{title}\n\n" + "\n".join(lines) + "\n"
    print(text, flush=True)
    return text


def write_json(name: str, payload: dict[str, Any], out: str | Path | None = None) -> Path:
    """Write ``payload`` (plus the machine it ran on) to ``benchmarks/results/<name>.json``."""
    path = Path(out) if out else RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = _strict({"benchmark": name, "machine": machine(), **payload})
    path.write_text(json.dumps(payload, indent=2, default=_default, allow_nan=False) + "\n")
    print(f"wrote {path}", flush=True)
    return path


def _strict(value):
    """Infinite or NaN floats (e.g. "never found within the budget") as null: strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict(v) for v in value]
    return value


def _default(value):
    try:
        import numpy as np

        if isinstance(value, np.generic):
            return value.item()
    except ImportError:
        pass
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


def _tree_cpu(root: int) -> dict[int, float]:
    """Own CPU seconds (user + system, children not included) of ``root`` and each live descendant."""
    tick = os.sysconf("SC_CLK_TCK")
    parent: dict[int, int] = {}
    cpu: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
        parent[int(entry)] = int(fields[1])
        cpu[int(entry)] = (int(fields[11]) + int(fields[12])) / tick  # utime stime
    out = {}
    for pid in cpu:
        p = pid
        while p and p != root and p in parent:
            p = parent[p]
        if p == root:
            out[pid] = cpu[pid]
    return out


class TreeCpu:
    """CPU seconds used by this process and its descendants between ``start`` and ``stop``.

    Ray's trial workers are descendants of the driver (through the raylet) but may exit
    before the end and are not always reaped into a parent's ``cutime``, so a thread reads
    every process's own CPU time from ``/proc`` every ``interval`` seconds and keeps the
    last value seen; a process's last ``interval`` before it exits can be missed. On a
    machine shared with other work this is steadier than wall time: it measures what the
    process tree spent, not how long it waited for a core. Linux only.
    """

    def __init__(self, interval: float = 0.25):
        import threading

        self.interval = interval
        self.root = os.getpid()
        self.base: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self) -> "TreeCpu":
        self.base = _tree_cpu(self.root)
        self._thread.start()
        return self

    def _poll(self) -> None:
        while not self._stop.wait(self.interval):
            self.last.update(_tree_cpu(self.root))

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.last.update(_tree_cpu(self.root))
        self.seconds = sum(v - self.base.get(pid, 0.0) for pid, v in self.last.items())


def package_attr(name: str, *modules: str) -> Any:
    """``name`` from the first of ``modules`` that the imported share-search's own folder holds.

    Revision benchmarks run this checkout's measuring code on older revisions too, whose
    package may be flat (``share_search.runner``) instead of layered (``share_search.engine.runner``).
    The check is by file, not by trying the import: an editable install's finder would
    otherwise serve a module the revision lacks from the installed checkout.
    """
    import importlib

    import share_search

    root = Path(share_search.__file__).parent
    for module in modules:
        rel = Path(*module.split(".")[1:])
        if (root / rel).with_suffix(".py").is_file() or (root / rel / "__init__.py").is_file():
            return getattr(importlib.import_module(module), name)
    raise ImportError(f"{name} is in none of {', '.join(modules)} under {root}")


def gpu_missing(device: str) -> bool:
    """True (and says so on stderr) when ``device`` is cuda but PyTorch sees no CUDA device."""
    import sys

    import torch

    if device == "cuda" and not torch.cuda.is_available():
        print("no CUDA device visible to PyTorch; this benchmark needs a GPU (--device cpu for a dry run)", file=sys.stderr)
        return True
    return False


NYU_FIELDS = ("image", "label", "depth", "normal")


def write_nyuv2_folder(root: Path, n_train: int, n_val: int, size: tuple[int, int], fields: Sequence[str] = NYU_FIELDS, seed: int = 0) -> int:
    """A folder in the NYUv2 layout MTAN and LibMTL use (``{split}/{field}/{i}.npy``, channels
    last) with random content: image in [0, 1), label in 13 classes with -1 unlabelled, depth
    that follows the image's brightness (valid everywhere), unit normals. Returns its bytes on disk."""
    import numpy as np

    rng = np.random.default_rng(seed)
    h, w = size
    for split, n in (("train", n_train), ("val", n_val)):
        for field in fields:
            (root / split / field).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            image = rng.random((h, w, 3), dtype=np.float32)
            normal = rng.normal(size=(h, w, 3)).astype(np.float32)
            arrays = {
                "image": image,
                "label": rng.integers(-1, 13, (h, w)).astype(np.float32),
                "depth": (1 + 4 * image.mean(axis=2, keepdims=True)).astype(np.float32),
                "normal": normal / np.linalg.norm(normal, axis=2, keepdims=True),
            }
            for field in fields:
                np.save(root / split / field / f"{i}.npy", arrays[field])
    return sum(p.stat().st_size for p in root.rglob("*.npy"))
