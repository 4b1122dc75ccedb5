"""`import share_search` stays light: torch, Ray and Optuna load only when a name that needs
them is used (PEP 562 module ``__getattr__``), and every public name still resolves.

Each check runs in a fresh interpreter, since this test process has long imported all of them.
"""

from __future__ import annotations

import json
import subprocess
import sys

from tests.runs import REPO, cli_env

HEAVY = ("ray", "torch", "optuna")
# the public names before issue 17: each must keep working
EARLIER_NAMES = (
    "FAMILIES", "ArchConfig", "CheckpointError", "DataError", "RunError", "ShareSearchError", "Spec", "SpecError",
    "build_model", "config_from_dict", "load_model", "load_spec", "parse_spec",
)


def python(script: str) -> dict:
    """Run ``script`` in a new interpreter; it prints one JSON value as its last line."""
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=cli_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


LOADED = f"json.dumps([m for m in {HEAVY!r} if m in sys.modules])"


def test_import_version_spec_and_errors_load_neither_ray_torch_nor_optuna():
    loaded = python(
        "import json, sys\n"
        "import share_search\n"
        "share_search.__version__, share_search.Spec, share_search.SpecError, share_search.ShareSearchError\n"
        "from share_search import RunError, load_spec, parse_spec\n"
        f"print({LOADED})\n"
    )
    assert loaded == []


def test_the_run_api_loads_no_ray_until_a_search_starts():
    loaded = python("import json, sys\nimport share_search\nshare_search.Run, share_search.open_run, share_search.run\n" f"print({LOADED})\n")
    assert "ray" not in loaded


def test_load_model_loads_torch_when_used():
    out = python(
        "import json, sys\n"
        "import share_search\n"
        "before = 'torch' in sys.modules\n"
        "from share_search import load_model\n"
        "print(json.dumps([before, 'torch' in sys.modules, callable(share_search.load_model), share_search.load_model is load_model]))\n"
    )
    assert out == [False, True, True, True]


def test_every_public_name_resolves_and_is_listed():
    out = python(
        "import json, sys\n"
        "import share_search\n"
        "missing = [n for n in share_search.__all__ if getattr(share_search, n, None) is None]\n"
        "print(json.dumps({'all': share_search.__all__, 'dir': dir(share_search), 'missing': missing}))\n"
    )
    assert out["missing"] == []
    assert set(EARLIER_NAMES) <= set(out["all"]) and {"Run", "open_run", "run"} <= set(out["all"])
    assert set(out["all"]) <= set(out["dir"])


def test_star_import_and_an_unknown_name():
    out = python(
        "import json\n"
        "from share_search import *\n"
        "import share_search\n"
        "try:\n"
        "    share_search.no_such_name\n"
        "    error = None\n"
        "except AttributeError as exc:\n"
        "    error = str(exc)\n"
        "print(json.dumps([callable(load_model), FAMILIES is share_search.FAMILIES, error]))\n"
    )
    assert out[:2] == [True, True]
    assert out[2] == "module 'share_search' has no attribute 'no_such_name'"


def test_the_command_line_help_loads_neither_torch_nor_ray():
    """``share-search --help`` and a bad command answer at once: nothing heavy is imported for them."""
    out = python(
        "import json, sys, contextlib, io\n"
        "from share_search.cli import build_parser\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try:\n"
        "        build_parser().parse_args(['--help'])\n"
        "    except SystemExit:\n"
        "        pass\n"
        f"print({LOADED})\n"
    )
    assert "torch" not in out and "ray" not in out
