"""Spec files that used to crash, hang, or mislead: each is refused in one short line that
names the key, line or value, or (for YAML 1.2 numbers and relative paths) now read as meant.

Issue 16, items 6 (alias bombs), 10 (random bytes, a 300-character name), 11 (``1e-3``,
duplicate keys, "did you mean"), 12 (task names) and 16 (relative data paths).
"""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from share_search.errors import SpecError
from share_search.runs.rank import leaderboard
from share_search.spec.model import load_spec, parse_spec, reserved_task_names

SHORT = 300  # characters: an error is one readable line, whatever the input held

HEAD = "name: t\ndata: {source: digits}\n"
TASKS = "tasks: {digit: {metric: accuracy}, odd: {}}\n"
FAMILIES = "families: {tree: {}}\n"
GOOD = HEAD + TASKS + FAMILIES


def alias_bomb(levels: int) -> str:
    """A spec whose ``name`` is nine ``lol``s nested ``levels`` deep through aliases (9**levels strings)."""
    lines = ['x:', '  a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels):
        lines.append(f"  a{i}: &a{i} [{','.join([f'*a{i - 1}'] * 9)}]")
    return "\n".join([*lines, f"name: *a{levels - 1}", "data: {source: digits}", TASKS + FAMILIES])


# (id, spec text, expected SpecError.path, words in the message)
REFUSED = [
    # item 6: on main the 6-level bomb (about 400 bytes) printed a 3.8 MB error line; 9 levels
    # (about 530 bytes) expand to 387 million strings, the 50 s and 3 GB
    ("alias-bomb-6-levels", alias_bomb(6), "", "line 3: YAML aliases (*a0) are not allowed in a spec"),
    ("alias-bomb-9-levels", alias_bomb(9), "", "line 3: YAML aliases (*a0) are not allowed in a spec"),
    ("alias-tiny", HEAD + "tasks: {digit: &m {metric: accuracy}, odd: *m}\n" + FAMILIES, "", "line 3: YAML aliases (*m) are not allowed"),
    # item 11: a key set twice names both lines
    ("duplicate-section", GOOD + "train: {epochs: 2}\ntrain: {epochs: 3}\n", "train", "set twice in {file}, at lines 5 and 6; keep one"),
    ("duplicate-key-in-section", GOOD + "train:\n  lr: 0.1\n  epochs: 2\n  lr: 0.2\n", "train.lr", "at lines 6 and 8"),
    ("duplicate-task", HEAD + "tasks:\n  digit: {}\n  odd: {}\n  digit: {metric: f1}\n" + FAMILIES, "tasks.digit", "at lines 4 and 6"),
    # item 11: unknown keys, each with a suggestion; a typo of a required key is named as the typo
    ("typo-of-required-name", GOOD.replace("name:", "nmae:"), "nmae", "unknown key 'nmae', did you mean 'name'?"),
    ("typo-in-section", GOOD + "search: {trails: 3}\n", "search.trails", "unknown key 'trails', did you mean 'trials'?"),
    (
        "every-unknown-key",
        GOOD.replace("name:", "nmae:") + "seeed: 1\ntrain: {epohcs: 2}\n",
        "nmae",
        "did you mean 'name'?; also seeed: unknown key 'seeed', did you mean 'seed'?; train.epohcs: unknown key 'epohcs', did you mean 'epochs'?",
    ),
    # item 12: task names that are YAML booleans/null or leaderboard columns
    ("task-yes", HEAD + "tasks: {yes: {}, odd: {}}\n" + FAMILIES, "tasks.yes", "'yes' is a YAML boolean or null word"),
    ("task-off", HEAD + "tasks: {off: {}, odd: {}}\n" + FAMILIES, "tasks.off", "'off' is a YAML boolean or null word"),
    ("task-quoted-null", HEAD + "tasks: {'null': {}, odd: {}}\n" + FAMILIES, "tasks.null", "'null' is a YAML boolean or null word"),
    *[
        (f"task-{col}", HEAD + f"tasks: {{{col}: {{}}, odd: {{}}}}\n" + FAMILIES, f"tasks.{col}", f"'{col}' is also a leaderboard column or --rank-by key")
        for col in ("params", "macs", "delta_m", "pareto", "rank", "trial", "state", "family", "arch", "role")
    ],
    # item 10: bytes that are not text, a name too long for a folder, a value echoed in full
    ("name-300-characters", GOOD.replace("name: t", "name: " + "a" * 300), "name", "at most 100 characters (it names the run folder), got 300"),
    ("huge-value-echoed", GOOD + "search: {sampler: " + "x" * 100_000 + "}\n", "search.sampler", "got 'xxxx"),
    ("huge-list-echoed", GOOD + "train: {lr: [" + ", ".join(["0.1"] * 20_000) + "]}\n", "train.lr", "choice list has duplicates: [0.1, 0.1"),
    ("nested-too-deeply", GOOD + "x: " + "[" * 5000 + "]" * 5000 + "\n", "", "nested too deeply"),
]


@pytest.mark.parametrize("text,path,words", [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_refused_in_one_short_line(tmp_path, text, path, words):
    file = tmp_path / "spec.yaml"
    file.write_text(text)
    with pytest.raises(SpecError) as info:
        load_spec(file)
    message = str(info.value)
    assert info.value.path == path, message
    assert words.format(file=file) in message, message
    assert len(message) < SHORT and "\n" not in message, message[:1000]


def test_random_bytes_are_refused_as_not_text(tmp_path):
    file = tmp_path / "spec.yaml"
    file.write_bytes(bytes(np.random.default_rng(16).integers(0, 256, 4096, dtype=np.uint8)))
    with pytest.raises(SpecError, match=r"spec.yaml: a spec is UTF-8 text, but byte \d+ is 0x[0-9a-f]{2}") as info:
        load_spec(file)
    assert len(str(info.value)) < SHORT


# (id, train section as written, the parsed value of one key) -- YAML 1.2 numbers and numeric strings
ACCEPTED = [
    ("lr-1e-3", "{lr: 1e-3}", "lr", 0.001),
    ("lr-1E-4", "{lr: 1E-4}", "lr", 0.0001),
    ("lr-2.5e-3", "{lr: 2.5e-3}", "lr", 0.0025),
    ("lr-quoted", "{lr: '1e-3'}", "lr", 0.001),
    ("wd-1e-5-range", "{weight_decay: {low: 1e-6, high: 1e-2, log: true}}", "weight_decay", (1e-6, 1e-2)),
    ("lr-choices", "{lr: [1e-3, 1e-2]}", "lr", (0.001, 0.01)),
    ("epochs-quoted", "{epochs: '10'}", "epochs", 10),
    ("batch-size-choices-quoted", "{batch_size: [32, '64']}", "batch_size", (32, 64)),
]


@pytest.mark.parametrize("train,key,expected", [c[1:] for c in ACCEPTED], ids=[c[0] for c in ACCEPTED])
def test_numbers_read_as_numbers(tmp_path, train, key, expected):
    file = tmp_path / "spec.yaml"
    file.write_text(GOOD + f"train: {train}\n")
    p = load_spec(file).train.params()[key]
    got = p.value if p.kind == "fixed" else p.choices if p.kind == "choice" else (p.low, p.high)
    assert got == pytest.approx(expected) and not isinstance(got, str)


def test_name_1e3_stays_a_name_only_when_quoted(tmp_path):
    """YAML 1.2 reads ``1e3`` as a number; quoted, it names the run."""
    file = tmp_path / "spec.yaml"
    file.write_text(GOOD.replace("name: t", 'name: "1e3"'))
    assert load_spec(file).name == "1e3"


def test_yes_as_plain_data_key_is_named(tmp_path):
    """Data parsed elsewhere (PyYAML made ``yes:`` into True) still gets a message naming the words."""
    data = yaml.safe_load(GOOD.replace("odd: {}", "yes: {}"))
    with pytest.raises(SpecError, match=r"^tasks: a task is named True: YAML reads an unquoted yes, no, on, off"):
        parse_spec(data)


def test_reserved_task_names_cover_every_leaderboard_column():
    """The reserved list comes from the code that builds the table: every column but val.<task> is in it."""
    import pandas as pd

    from share_search.spec.model import TRIAL_COLUMNS

    trials = pd.DataFrame([dict.fromkeys(TRIAL_COLUMNS, 0) | {"state": "COMPLETE", "baseline": True, "val.a": 0.5, "val.b": 0.5}])
    board = leaderboard(trials, {"a": True, "b": True})
    assert {c for c in board.columns if not c.startswith("val.")} <= set(reserved_task_names())
    assert {"pareto", "delta_m"} <= set(reserved_task_names())  # --rank-by keys


# --------------------------------------------------------------------------- relative data paths (item 16)
def _npz_spec(folder, source: str) -> None:
    rng = np.random.default_rng(0)
    np.savez(folder / "table.npz", x=rng.normal(size=(60, 3)), a=rng.integers(0, 2, 60).astype(float), b=rng.normal(size=60))
    (folder / "spec.yaml").write_text(f"name: rel\ndata: {{source: {source}}}\ntasks: {{a: {{}}, b: {{}}}}\nfamilies: [tree]\n")


def test_relative_data_path_starts_from_the_spec_folder(tmp_path, monkeypatch):
    folder = tmp_path / "project" / "specs"
    folder.mkdir(parents=True)
    _npz_spec(folder, "table.npz")
    monkeypatch.chdir(tmp_path)
    spec = load_spec("project/specs/spec.yaml")
    assert spec.data.source == str(folder / "table.npz")
    # the run folder's spec.resolved.yaml is written from this spec: read back anywhere, it names the same file
    elsewhere = tmp_path / "runs" / "rel"
    elsewhere.mkdir(parents=True)
    (elsewhere / "spec.resolved.yaml").write_text(spec.to_yaml())
    assert load_spec(elsewhere / "spec.resolved.yaml") == spec


def test_builtin_and_module_sources_and_plain_data_keep_their_form(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for source in ("digits", "mymodule.data:load"):
        (tmp_path / "s.yaml").write_text(GOOD.replace("source: digits", f"source: {source}"))
        assert load_spec(tmp_path / "s.yaml").data.source == source
    data = yaml.safe_load(GOOD.replace("source: digits", "source: data/x.csv"))
    assert parse_spec(data).data.source == "data/x.csv"  # plain data has no folder: the current one


def test_y_and_n_stay_task_names():
    """PyYAML reads `y:` and `n:` as strings, so they are ordinary task names (a common label name)."""
    spec = parse_spec(yaml.safe_load(GOOD.replace("odd: {}", "y: {}")))
    assert "y" in spec.task_names


def test_delta_m_without_baselines_is_refused_before_any_trial_fails():
    """On main every trial of such a run failed with 'the single-task baseline did not finish'."""
    from share_search.errors import SpecError
    from share_search.spec.model import parse_spec

    spec = {"name": "nb", "data": {"source": "digits"}, "tasks": {"digit": None, "odd": None}, "families": {"tree": {}},
            "search": {"baselines": False}}
    with pytest.raises(SpecError) as err:
        parse_spec(spec)
    assert err.value.path == "search.baselines" and "objective: delta_m compares every trial against them" in str(err.value)
    assert parse_spec({**spec, "search": {"baselines": False, "objective": "per_task"}}).search.baselines is False
