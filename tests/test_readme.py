"""The README's commands work as written: every code block runs, in order, in a folder that
holds only a copy of the repository's ``search_spaces/`` (as a clone does).

The rule: every code block of README.md (indented or fenced) is run unless the line before
it in the README's source is ``<!-- not run by tests: REASON -->`` (blocks that create a
virtual environment, need root or several machines, serve until stopped, or are spec
fragments rather than commands). A fenced ```` ```python ```` block runs as one script;
any other block runs line by line, each line ``share-search ...`` (run with this
environment's ``share-search``) or ``python -c ...`` (this Python); anything else fails the
test, so a new block is either runnable or visibly exempted. The searches in "Your own
search" and "Python API" start Ray: run this file under the shared Ray lock.

Also here: the README's test command must pass on a machine without Debian's dataset
packages (``test_fashion_from_the_debian_package`` skips there, unless ``CI`` is set).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

from tests.runs import REPO, cli_env

README = REPO / "README.md"
EXEMPT = re.compile(r"<!--\s*not run by tests:(.*?)-->", re.S)
SHELL_OPERATORS = {"&&", "||", "|", ";", ">", ">>", "<", "&"}
HANG_GUARD_S = 3600  # not a timing assertion: only keeps a hung command from holding CI forever


@dataclass(frozen=True)
class Block:
    line: int  # 1-based line of the block's first line in the README
    text: str
    exempt: str | None  # the reason given in its marker, or None: the block is run
    python: bool = False  # a fenced ```python block: one script


def blocks_of(markdown: str) -> list[Block]:
    """Every code block, with the reason of the exemption marker just before it, if any."""
    blocks, previous = [], None
    for token in MarkdownIt("commonmark").parse(markdown):
        if token.type in ("code_block", "fence"):
            marker = EXEMPT.fullmatch(previous.content.strip()) if previous is not None and previous.type == "html_block" else None
            first = token.map[0] + (2 if token.type == "fence" else 1)  # a fence's content starts after its ``` line
            python = token.type == "fence" and token.info.strip().split(" ")[0] == "python"
            blocks.append(Block(first, token.content, marker.group(1).strip() if marker else None, python))
        previous = token
    return blocks


def commands_of(block: Block) -> list[tuple[int, list[str]]]:
    """(README line, argv) of each command of a block; a line it cannot run fails the test."""
    if block.python:
        return [(block.line, [sys.executable, "-c", block.text])]
    commands = []
    for offset, line in enumerate(block.text.splitlines()):
        where = f"README.md line {block.line + offset}"
        try:
            args = shlex.split(line, comments=True)
        except ValueError as exc:
            pytest.fail(f"{where}: cannot parse {line.strip()!r} ({exc})")
        if not args:
            continue
        if SHELL_OPERATORS & set(args) or line.rstrip().endswith("\\"):
            pytest.fail(f"{where}: {line.strip()!r} chains shell commands; write one command per line or mark the block <!-- not run by tests: reason -->")
        if args[0] == "share-search":
            commands.append((block.line + offset, [str(Path(sys.executable).parent / "share-search"), *args[1:]]))
        elif args[0] in ("python", "python3") and len(args) == 3 and args[1] == "-c":
            commands.append((block.line + offset, [sys.executable, "-c", args[2]]))
        else:
            pytest.fail(f"{where}: {line.strip()!r} is neither `share-search ...` nor `python -c ...`; mark its block <!-- not run by tests: reason -->")
    return commands


def test_every_exemption_states_its_reason_and_the_rest_is_runnable():
    blocks = blocks_of(README.read_text())
    assert all(b.exempt for b in blocks if b.exempt is not None), [b.line for b in blocks if b.exempt == ""]
    run = [argv for b in blocks if b.exempt is None for _, argv in commands_of(b)]
    # the quick path a new user follows must be among the blocks that run
    assert [argv[1] for argv in run if Path(argv[0]).name == "share-search"][:4] == ["init", "validate", "run", "leaderboard"]


def test_the_parser_tolerates_prose_fenced_blocks_and_exemptions():
    text = (
        "# T\n\nSome prose with `share-search run x.yaml` inline.\n\n"
        "<!-- not run by tests: a spec fragment -->\n\n    search:\n      trials: 3\n\n"
        "1. A list item:\n\n   <!-- not run by tests: needs a cluster -->\n\n       ray start --head\n\n"
        "```sh\nshare-search --help   # a comment\n\npython -c \"print('# not a comment')\"\n```\n"
    )
    blocks = blocks_of(text)
    assert [(b.line, b.exempt) for b in blocks] == [(7, "a spec fragment"), (14, "needs a cluster"), (17, None)]
    assert [argv[1:] for _, argv in commands_of(blocks[2])] == [["--help"], ["-c", "print('# not a comment')"]]


def test_a_python_block_runs_as_one_script():
    text = "# T\n\n```python\nimport share_search  # a comment\n\nrun = share_search.open_run('runs/x')\n```\n\n```\nshare-search --help\n```\n"
    python, shell = blocks_of(text)
    assert python.python and not shell.python and python.line == 4
    assert commands_of(python) == [(4, [sys.executable, "-c", "import share_search  # a comment\n\nrun = share_search.open_run('runs/x')\n"])]
    readme = [b for b in blocks_of(README.read_text()) if b.python and b.exempt is None]
    assert any("share_search.run(" in b.text and "share_search.open_run(" in b.text for b in readme), "README's Python API example is not run"


def test_the_readme_commands_run_in_order_in_an_empty_folder(tmp_path):
    """The README's own path, for real: init, validate, run (a search: Ray), leaderboard,
    loading the exported model, the Python API (another search), the report."""
    shutil.copytree(REPO / "search_spaces", tmp_path / "search_spaces")
    env = cli_env()
    env.pop("SHARE_SEARCH_STORAGE", None)
    for block in blocks_of(README.read_text()):
        if block.exempt is not None:
            continue
        for line, argv in commands_of(block):
            done = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=HANG_GUARD_S)
            assert done.returncode == 0, f"README.md line {line}: {shlex.join(argv[1:])} exited {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert (tmp_path / "runs" / "my-search" / "export" / "rank-1" / "weights.safetensors").is_file()
    assert (tmp_path / "runs" / "my-search" / "report.html").is_file()
    assert (tmp_path / "runs" / "q" / "export" / "rank-3" / "weights.safetensors").is_file()


def test_the_readme_test_command_passes_without_the_debian_datasets():
    """Outside CI the Fashion-MNIST test skips with its reason when the package is missing;
    under CI it fails instead, so CI cannot pass without testing the source for real."""
    from share_search.data import FASHION_FILES, FASHION_ROOT

    installed = all((Path(FASHION_ROOT) / f).is_file() for files in FASHION_FILES.values() for f in files)
    test = "tests/data/test_data_builtin.py::test_fashion_from_the_debian_package"
    env = {k: v for k, v in cli_env().items() if k != "CI"}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", test], cwd=REPO, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:]
    if not installed:
        assert "1 skipped" in done.stdout and "dataset-fashion-mnist is not installed" in done.stdout
        under_ci = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test], cwd=REPO, env={**env, "CI": "true"}, capture_output=True, text=True)
        assert under_ci.returncode != 0 and "CI is set" in under_ci.stdout


def test_ci_runs_the_readme_test_command_verbatim():
    """CI's contract: ``.ci/run`` ends with the README's test command, character for character."""
    readme = [b.text.strip() for b in blocks_of(README.read_text()) if "pytest" in b.text and b.exempt is not None]
    assert len(readme) == 1, readme
    ci = [line.strip() for line in (REPO / ".ci" / "run").read_text().splitlines() if line.strip() and not line.startswith("#")]
    assert ci[-1] == readme[0]
