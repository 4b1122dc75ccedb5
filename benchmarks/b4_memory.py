"""B4: peak memory (RSS) of the search driver and of one trial, on the default demo.

The search runs as ``share-search run SPEC`` in a child process. Its own peak RSS is
``ru_maxrss`` of ``RUSAGE_SELF``, read in that process when the run ends. Ray's processes
(GCS, raylet, dashboard agent, workers) are its descendants; every 0.2 s this script
reads ``VmHWM`` (the kernel's peak RSS of a process) and ``VmRSS`` of each of them from
``/proc``. A trial worker is a process that was seen running a trial
(``ray::ImplicitFunc``); its peak covers every trial it ran (Tune reuses actors).
"Ray total" is the largest sum of current RSS over all of the run's processes seen in one
sample (shared pages count once per process, so it overstates what the machine gave up).

    python benchmarks/b4_memory.py --quick   # search_spaces/quick.yaml (digits, 8 trials)
    python benchmarks/b4_memory.py           # search_spaces/mtl.yaml, the default demo
    python benchmarks/b4_memory.py --folder-gb 6 --cap-mb 2048   # a streamed folder 3x the trial's cap

``--folder-gb``: a folder in the NYUv2 layout (288 x 384 samples, channels last, random
values) of about that many GB on disk is written to a temporary folder and searched with
``data.in_memory_max_mb`` set to ``--cap-mb``, so ``auto`` must stream it; one trial
trains one epoch over all of it (no references). The question: does a trial's peak RSS stay
under the cap while it reads data several times larger? (The page cache is not RSS.)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import HERE, print_table, write_json, write_nyuv2_folder

REPO = HERE.parent
CHILD = r"""
import json, resource, sys
from share_search.cli import main
rc = main(["run", sys.argv[1], "--out", sys.argv[2]])
print("B4-DRIVER " + json.dumps({"rc": rc, "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}), flush=True)
sys.exit(rc)
"""


def _status(pid: int) -> dict[str, int]:
    out = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmHWM", "VmRSS"):
                out[key] = int(value.split()[0])  # kB
    except OSError:
        pass
    return out


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def _descendants(root: int) -> list[int]:
    parent = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
                parent[int(entry)] = int(stat[stat.rindex(")") + 2 :].split()[1])
            except (OSError, ValueError):
                continue
    out = []
    for pid in parent:
        p = pid
        while p in parent and p not in (root, 0, 1):
            p = parent[p]
        if p == root and pid != root:
            out.append(pid)
    return out


def measure(spec: Path) -> dict:
    out = Path(tempfile.mkdtemp(prefix="b4-")) / "run"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    started = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(spec), str(out)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True, env=env, cwd=tempfile.gettempdir())
    procs: dict[int, dict] = {}
    total_peak_kb = 0
    lines: list[str] = []
    import threading

    reader = threading.Thread(target=lambda: lines.extend(child.stdout), daemon=True)
    reader.start()
    while child.poll() is None:
        total = 0
        for pid in _descendants(child.pid):
            st = _status(pid)
            if not st:
                continue
            info = procs.setdefault(pid, {"name": "", "hwm_kb": 0, "trial": False})
            name = _cmdline(pid).split(" ")[0]
            info["name"] = name or info["name"]
            info["trial"] |= name.startswith("ray::ImplicitFunc")
            info["hwm_kb"] = max(info["hwm_kb"], st.get("VmHWM", 0))
            total += st.get("VmRSS", 0)
        total_peak_kb = max(total_peak_kb, total)
        time.sleep(0.2)
    reader.join(timeout=5)
    wall = time.perf_counter() - started
    driver = next((json.loads(l.split(" ", 1)[1]) for l in lines if l.startswith("B4-DRIVER ")), None)
    if driver is None or driver["rc"] != 0:
        sys.stdout.write("".join(lines[-40:]))
        raise SystemExit(f"the search failed (exit {child.returncode}); its output is above")
    trials = [p["hwm_kb"] / 1024 for p in procs.values() if p["trial"]]
    by_name: dict[str, float] = {}
    for p in procs.values():
        key = "trial worker (ray::ImplicitFunc)" if p["trial"] else p["name"].split("/")[-1] or "?"
        by_name[key] = max(by_name.get(key, 0.0), p["hwm_kb"] / 1024)
    return {
        "spec": str(spec.relative_to(REPO)) if spec.is_relative_to(REPO) else str(spec),
        "wall_s": wall,
        "driver_peak_mb": driver["maxrss_kb"] / 1024,
        "trial_workers": len(trials),
        "trial_peak_mb_max": max(trials) if trials else None,
        "trial_peak_mb_all": sorted(trials),
        "ray_total_rss_peak_mb": total_peak_kb / 1024,
        "peak_mb_by_process": dict(sorted(by_name.items(), key=lambda kv: -kv[1])),
    }


FOLDER_SIZE = (288, 384)  # NYUv2 as MTAN stores it


def write_folder(root: Path, gigabytes: float) -> tuple[int, int]:
    """A folder of random NYUv2-size samples (image, label, depth) of about ``gigabytes`` GB: (samples, bytes)."""
    h, w = FOLDER_SIZE
    per_sample = 4 * (h * w * 3 + h * w + h * w)
    n = max(20, int(gigabytes * 2**30 / per_sample))
    n_val = max(4, n // 50)
    return n, write_nyuv2_folder(root, n - n_val, n_val, FOLDER_SIZE, fields=("image", "label", "depth"))


def folder_spec(root: Path, cap_mb: int, path: Path) -> Path:
    import yaml

    spec = {
        "name": "b4-folder", "seed": 0,
        "data": {"source": str(root), "fields": {"label": {"kind": "mask", "classes": 13}},
                 "in_memory": "auto", "in_memory_max_mb": cap_mb, "loader": {"num_workers": 1}},
        "tasks": {"scene": {"label": "label", "reduce": "mode"}, "depth": {"label": "depth", "reduce": "mean"}},
        "backbone": {"name": "convnet", "options": {"channels": [4, 8], "hidden": 16}},
        "families": {"tree": {}},
        "train": {"epochs": 1, "batch_size": 16, "lr": 0.001},
        "search": {"trials": 1, "concurrency": 1, "baselines": False, "objective": "per_task", "export_top": 0, "resources": {"cpu": 2}},
    }
    path.write_text(yaml.safe_dump(spec))
    return path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="search_spaces/quick.yaml instead of the default demo")
    ap.add_argument("--spec", type=Path, help="another spec")
    ap.add_argument("--folder-gb", type=float, help="search a streamed NYUv2-layout folder of about this many GB")
    ap.add_argument("--cap-mb", type=int, default=2048, help="the trial's memory cap (data.in_memory_max_mb) with --folder-gb")
    ap.add_argument("--json", help="where to write the result JSON")
    args = ap.parse_args(argv)
    if args.folder_gb:
        return folder_main(args)
    spec = args.spec or REPO / "search_spaces" / ("quick.yaml" if args.quick else "mtl.yaml")
    note = None
    if not spec.is_file():
        note = f"{spec} is missing; measured search_spaces/quick.yaml instead"
        print(note, flush=True)
        spec = REPO / "search_spaces" / "quick.yaml"
    r = measure(spec.resolve())
    print_table(
        f"B4 peak RSS, MB ({r['spec']}, search wall {r['wall_s']:.0f} s)",
        ["process", "peak RSS MB"],
        [["driver (share-search run)", r["driver_peak_mb"]],
         [f"one trial worker (max over {r['trial_workers']})", r["trial_peak_mb_max"]],
         *[[name, mb] for name, mb in r["peak_mb_by_process"].items() if not name.startswith("trial worker")],
         ["driver peak + largest sum of RSS over Ray's processes at one moment", r["ray_total_rss_peak_mb"] + r["driver_peak_mb"]]],
        digits=0,
    )
    write_json("b4_memory" + ("_quick" if args.quick else ""), {"mode": "quick" if args.quick else "full", "note": note, **r}, args.json)
    return 0


def folder_main(args) -> int:
    import shutil

    work = Path(tempfile.mkdtemp(prefix="b4-folder-"))
    try:
        started = time.perf_counter()
        n, nbytes = write_folder(work / "nyu", args.folder_gb)
        print(f"wrote {n} samples, {nbytes / 2**30:.2f} GB, in {time.perf_counter() - started:.0f} s", flush=True)
        r = measure(folder_spec(work / "nyu", args.cap_mb, work / "spec.yaml"))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    trial = r["trial_peak_mb_max"]
    print_table(
        f"B4 streamed folder: {n} samples of 288x384, {nbytes / 2**30:.2f} GB ({nbytes / 2**20 / args.cap_mb:.1f}x the cap), one epoch",
        ["measure", "MB"],
        [["the trial's cap (data.in_memory_max_mb)", args.cap_mb],
         ["peak RSS of the trial process (and of each loader worker: max over them)", trial],
         ["driver peak RSS", r["driver_peak_mb"]],
         ["driver peak + largest sum of RSS over Ray's processes at one moment", r["ray_total_rss_peak_mb"] + r["driver_peak_mb"]]],
        digits=0,
    )
    print(f"trial peak under the cap: {trial is not None and trial < args.cap_mb}")
    write_json("b4_memory_folder", {"mode": "folder", "samples": n, "bytes": nbytes, "cap_mb": args.cap_mb,
                                    "trial_under_cap": trial is not None and trial < args.cap_mb, **r}, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
