"""The package is split into layer packages; what spans them still treats them as one package."""

from pathlib import Path

import share_search
from share_search.engine.trial import ORIGIN_INTERNAL, ORIGIN_USER, failure_origin


def _raised_in(path: Path) -> BaseException:
    """An exception whose innermost frame is a function defined in ``path``."""
    namespace: dict = {}
    exec(compile("def fail():\n    raise KeyError('bug')\n", str(path), "exec"), namespace)
    try:
        namespace["fail"]()
    except KeyError as exc:
        return exc
    raise AssertionError("fail() did not raise")


def test_a_bug_in_any_layer_is_share_searchs_not_the_users():
    """A failure raised in train/, arch/ or runs/ is internal, as one raised in the engine is."""
    package = Path(share_search.__file__).resolve().parent
    for module in ("train/loop.py", "arch/backbones.py", "runs/export.py", "engine/trial.py"):
        assert failure_origin(_raised_in(package / module)) == ORIGIN_INTERNAL, module


def test_a_bug_in_the_users_own_file_stays_theirs(tmp_path):
    assert failure_origin(_raised_in(tmp_path / "my_backbone.py")) == ORIGIN_USER
