"""The study database's password is written and printed nowhere, and the PostgreSQL URLs the
starter spec and the README show work as written (issue 16, items 3 and 14).

The attack is real: a role of its own, whose password holds '@', ':' and '/', on a real
PostgreSQL server; real searches in a ``share-search run`` subprocess with that password in
the spec, in a ``${VAR}`` reference, or in ``SHARE_SEARCH_STORAGE``; then every file of the
run folder and of Ray's temporary folder (zip and gzip members too), every row of every
table of the study's database, and everything the commands printed are searched for it.

PostgreSQL: ``SHARE_SEARCH_TEST_POSTGRES`` (as in tests/test_postgres.py) names a role that
may create roles (``.ci/run`` grants ``share`` CREATEROLE). Without it the tests skip
locally and fail under CI.
"""

from __future__ import annotations

import gzip
import io
import os
import re
import shutil
import subprocess
import tempfile
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import optuna
import pytest
import sqlalchemy
import yaml

from share_search.runs.study import finished_trials
from share_search.cli import main
from share_search.runs.study import hide_password, open_storage
from tests.runs import REPO, cli_command, cli_env, small_spec, write_spec

ADMIN_URL = os.environ.get("SHARE_SEARCH_TEST_POSTGRES", "postgresql+psycopg2://share:share@127.0.0.1:5432/share_search")
PASSWORD_VAR = "SHARE_SEARCH_TEST_SECRET_PASSWORD"
# one Tuner phase of one round (concurrency 2), one exported checkpoint (recipe and zip artifact), two trials to rank
SEARCH = {"trials": 2, "baselines": False, "objective": "per_task", "export_top": 1}


def _unavailable(reason: str):
    if os.environ.get("CI"):
        pytest.fail(f"CI is set but {reason}; .ci/run sets PostgreSQL up")
    pytest.skip(reason)


@dataclass
class SecretDb:
    role: str
    password: str  # as the server knows it: '@', ':' and '/' inside
    needles: tuple[bytes, ...]  # its distinctive halves: neither may appear anywhere

    def url(self, password_text: str | None = None, driver: str = "postgresql+psycopg2") -> str:
        """The role's URL; the password percent-encoded unless ``password_text`` stands in for it."""
        admin = sqlalchemy.make_url(ADMIN_URL)
        secret = quote(self.password, safe="") if password_text is None else password_text
        return f"{driver}://{self.role}:{secret}@{admin.host}:{admin.port or 5432}/{admin.database}"


@pytest.fixture
def secret_db():
    """A fresh role with a distinctive password, in a schema of its own; dropped afterwards."""
    admin = sqlalchemy.create_engine(ADMIN_URL, connect_args={"connect_timeout": 5})
    try:
        with admin.connect():
            pass
    except Exception as exc:
        _unavailable(f"PostgreSQL at {hide_password(ADMIN_URL)} cannot be reached ({type(exc).__name__})")
    halves = (uuid.uuid4().hex[:14], uuid.uuid4().hex[:14])
    db = SecretDb(role=f"leak_{uuid.uuid4().hex[:10]}", password=f"{halves[0]}@:/{halves[1]}", needles=tuple(h.encode() for h in halves))
    try:
        with admin.begin() as c:
            c.exec_driver_sql(f"CREATE ROLE {db.role} LOGIN PASSWORD '{db.password}'")
            c.exec_driver_sql(f"CREATE SCHEMA {db.role}")
            c.exec_driver_sql(f"GRANT USAGE, CREATE ON SCHEMA {db.role} TO {db.role}")
            c.exec_driver_sql(f"ALTER ROLE {db.role} SET search_path = {db.role}")
    except sqlalchemy.exc.DBAPIError as exc:
        _unavailable(f"{hide_password(ADMIN_URL)} may not create a role ({str(exc.orig).strip()}); .ci/run grants it CREATEROLE")
    try:
        yield db
    finally:
        with admin.begin() as c:
            c.exec_driver_sql(f"DROP SCHEMA IF EXISTS {db.role} CASCADE")
            c.exec_driver_sql(f"DROP ROLE IF EXISTS {db.role}")
        admin.dispose()


@pytest.fixture
def ray_tmp():
    """Ray's temporary folder for the subprocess runs (short: it holds Unix sockets), searched too."""
    path = Path(tempfile.mkdtemp(prefix="ss-ray-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


# --------------------------------------------------------------------------- where to look
def _holding(data: bytes, needles: tuple[bytes, ...], name: str) -> list[str]:
    """``name`` if ``data`` holds a needle, and the members of zip or gzip data that do."""
    found = [name] if any(n in data for n in needles) else []
    if data[:2] == b"\x1f\x8b":
        try:
            found += _holding(gzip.decompress(data), needles, f"{name} (gunzipped)")
        except (OSError, EOFError):
            pass
    if data[:4] == b"PK\x03\x04":
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            for info in z.infolist():
                found += _holding(z.read(info), needles, f"{name}!{info.filename}")
    return found


def files_holding(root: Path, needles: tuple[bytes, ...]) -> tuple[list[str], list[str]]:
    """(files searched, files holding a needle) under ``root``, every file read as bytes."""
    searched, found = [], []
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink():
            name = str(path.relative_to(root))
            searched.append(name)
            try:
                data = path.read_bytes()
            except OSError:  # a socket or a file Ray removed meanwhile
                continue
            found += _holding(data, needles, name)
    return searched, found


def database_dump(db: SecretDb) -> str:
    """Every row of every table in the role's schema: the study, its trials and all their
    attributes, parameters, values, notes and artifact records."""
    engine = sqlalchemy.create_engine(db.url())
    try:
        with engine.connect() as c:
            tables = sqlalchemy.inspect(c).get_table_names(schema=db.role)
            return "\n".join(f"{t}: {c.exec_driver_sql(f'SELECT * FROM {db.role}.{t}').fetchall()!r}" for t in tables)
    finally:
        engine.dispose()


def run_cli(*args: str, ray_tmp: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(cli_command(*args), env=cli_env(RAY_TMPDIR=str(ray_tmp), **env), capture_output=True, text=True, timeout=600)


def assert_nowhere(db: SecretDb, run_dir: Path, ray_tmp: Path, printed: str) -> None:
    searched, found = files_holding(run_dir, db.needles)
    # the places the password used to reach: the search did write them, and they were read
    for expected in ("spec.resolved.yaml", "run.log", "export/rank-1/recipe.json", "leaderboard.csv"):
        assert expected in searched
    assert any(n.startswith("ray/") and "experiment_state" in n for n in searched)
    assert any(n.startswith("artifacts/") for n in searched)
    assert not found, f"the password is in {found}"
    ray_searched, ray_found = files_holding(ray_tmp, db.needles)
    assert ray_searched and not ray_found, f"the password is in Ray's temporary files {ray_found}"
    dump = database_dump(db)
    assert "spec" in dump and "export-" in dump  # the study's spec attribute and its export artifact record
    assert not any(n.decode() in dump for n in db.needles), "the password is stored in the study"
    assert not any(n.decode() in printed for n in db.needles), "the password was printed"


# --------------------------------------------------------------------------- the attacks
def test_a_password_written_in_the_spec_is_stored_and_printed_nowhere(tmp_path, secret_db, ray_tmp, monkeypatch, capsys):
    url = secret_db.url()
    spec = write_spec(tmp_path / "leak.yaml", small_spec(name=secret_db.role, search={**SEARCH, "storage": url}))
    run_dir = tmp_path / "run"
    done = run_cli("run", str(spec), "--out", str(run_dir), "--quiet", ray_tmp=ray_tmp)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{secret_db.role}:***@" in done.stdout  # the summary names the study's storage, masked
    printed = done.stdout + done.stderr

    # the run folder holds the URL masked: reading it back needs the URL again, and says so
    monkeypatch.delenv("SHARE_SEARCH_STORAGE", raising=False)
    assert main(["leaderboard", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert "search.storage" in err and "SHARE_SEARCH_STORAGE" in err and "password" in err
    # a wrong URL (another database) is refused, not used
    monkeypatch.setenv("SHARE_SEARCH_STORAGE", secret_db.url().replace("/share_search", "/another"))
    assert main(["leaderboard", str(run_dir)]) == 2
    assert "does not match" in capsys.readouterr().err
    monkeypatch.setenv("SHARE_SEARCH_STORAGE", url)
    assert main(["leaderboard", str(run_dir), "--format", "csv"]) == 0
    assert main(["report", str(run_dir)]) == 0
    assert main(["export", str(run_dir), "--top", "1"]) == 0  # recipe and zip artifact written again
    out = capsys.readouterr()
    printed += out.out + out.err
    assert_nowhere(secret_db, run_dir, ray_tmp, printed)


def test_a_password_from_a_variable_reference_stays_a_reference(tmp_path, secret_db, ray_tmp, monkeypatch, capsys):
    reference = secret_db.url(password_text="${" + PASSWORD_VAR + "}")
    spec_data = small_spec(name=secret_db.role, search={**SEARCH, "storage": reference})
    spec = write_spec(tmp_path / "leak.yaml", spec_data)
    run_dir = tmp_path / "run"
    secret = {PASSWORD_VAR: secret_db.password}  # as is: '@', ':' and '/' are encoded when expanded
    done = run_cli("run", str(spec), "--out", str(run_dir), "--quiet", ray_tmp=ray_tmp, **secret)
    assert done.returncode == 0, done.stdout + done.stderr
    printed = done.stdout + done.stderr
    assert yaml.safe_load((run_dir / "spec.resolved.yaml").read_text())["search"]["storage"] == reference

    # without the variable: one line naming the key and the variable, nothing written
    monkeypatch.delenv(PASSWORD_VAR, raising=False)
    before = sorted(run_dir.rglob("*"))
    assert main(["leaderboard", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "search.storage" in err and PASSWORD_VAR in err
    assert sorted(run_dir.rglob("*")) == before

    # with it: the run folder opens, and --resume continues the study
    monkeypatch.setenv(PASSWORD_VAR, secret_db.password)
    assert main(["leaderboard", str(run_dir), "--format", "csv"]) == 0
    write_spec(spec, {**spec_data, "search": {**spec_data["search"], "trials": 3}})
    done = run_cli("run", str(spec), "--out", str(run_dir), "--quiet", "--resume", ray_tmp=ray_tmp, **secret)
    assert done.returncode == 0, done.stdout + done.stderr
    printed += done.stdout + done.stderr + capsys.readouterr().out
    study = optuna.load_study(study_name=secret_db.role, storage=secret_db.url())
    assert len(finished_trials(study)) == 3  # trained trials: a re-proposal is told, not retrained
    assert study.user_attrs["spec"]["search"]["storage"] == reference
    assert_nowhere(secret_db, run_dir, ray_tmp, printed)


def test_share_search_storage_gives_the_url_when_the_spec_has_none(tmp_path, secret_db, ray_tmp, monkeypatch, capsys):
    spec = write_spec(tmp_path / "leak.yaml", small_spec(name=secret_db.role, search=SEARCH))
    run_dir = tmp_path / "run"
    done = run_cli("run", str(spec), "--out", str(run_dir), "--quiet", ray_tmp=ray_tmp, SHARE_SEARCH_STORAGE=secret_db.url())
    assert done.returncode == 0, done.stdout + done.stderr
    assert not (run_dir / "study.db").exists()  # the study went to PostgreSQL
    assert yaml.safe_load((run_dir / "spec.resolved.yaml").read_text())["search"]["storage"] == "${SHARE_SEARCH_STORAGE}"
    assert len(finished_trials(optuna.load_study(study_name=secret_db.role, storage=secret_db.url()))) == 2
    monkeypatch.setenv("SHARE_SEARCH_STORAGE", secret_db.url())
    assert main(["leaderboard", str(run_dir), "--format", "csv"]) == 0
    assert_nowhere(secret_db, run_dir, ray_tmp, done.stdout + done.stderr + capsys.readouterr().out)


def test_a_missing_variable_is_named_before_anything_is_written(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("SHARE_SEARCH_TEST_UNSET", raising=False)
    storage = "postgresql://share:${SHARE_SEARCH_TEST_UNSET}@127.0.0.1:5432/share_search"
    spec = write_spec(tmp_path / "s.yaml", small_spec(search={"storage": storage}))
    assert main(["run", str(spec), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: search.storage: environment variable SHARE_SEARCH_TEST_UNSET is not set")
    assert not (tmp_path / "run").exists()


# --------------------------------------------------------------------------- the masking
@pytest.mark.parametrize(
    "url, shown",
    [
        ("postgresql://u:pw@h/db", "postgresql://u:***@h/db"),
        ("postgresql+psycopg2://u:p@ss:w@rd@h:5432/db", "postgresql+psycopg2://u:***@h:5432/db"),
        ("postgresql://u:p%40ss%3A@h/db", "postgresql://u:***@h/db"),
        ("postgresql://u:pw/x?y@h/db", "postgresql://u:***@h/db"),
        ("postgresql://u:@h/db", "postgresql://u:***@h/db"),
        ("postgresql://u@h/db", "postgresql://u@h/db"),
        ("postgresql://h/db", "postgresql://h/db"),
        ("postgresql://h:5432/db?sslmode=require", "postgresql://h:5432/db?sslmode=require"),
        ("postgresql://u@h/db?password=pw&sslmode=require", "postgresql://u@h/db?password=***&sslmode=require"),
        ("postgresql://u@h/db?sslmode=require&PASSWORD=pw", "postgresql://u@h/db?sslmode=require&PASSWORD=***"),
        ("mysql://u@h/db?passwd=pw;ssl_key=k", "mysql://u@h/db?passwd=***;ssl_key=k"),
        ("postgresql://u:${DB_PASSWORD}@h/db", "postgresql://u:${DB_PASSWORD}@h/db"),
        ("postgresql://u:x${DB_PASSWORD}@h/db", "postgresql://u:***@h/db"),
        ("${SHARE_SEARCH_STORAGE}", "${SHARE_SEARCH_STORAGE}"),
        ("sqlite:////tmp/run/study.db", "sqlite:////tmp/run/study.db"),
        ("sqlite:////tmp/a@b/study.db", "sqlite:////tmp/a@b/study.db"),
    ],
)
def test_hide_password(url, shown):
    assert hide_password(url) == shown


def test_a_refusal_shows_no_password_given_in_the_query_string(tmp_path, secret_db, capsys):
    """``?password=`` is a URL's other place for it; the "already exists" refusal names the URL."""
    admin = sqlalchemy.make_url(ADMIN_URL)
    url = f"postgresql+psycopg2://{secret_db.role}@{admin.host}:{admin.port or 5432}/{admin.database}?password={quote(secret_db.password, safe='')}"
    optuna.create_study(study_name=secret_db.role, storage=url)
    spec = write_spec(tmp_path / "s.yaml", small_spec(name=secret_db.role, search={**SEARCH, "storage": url}))
    assert main(["run", str(spec), "--out", str(tmp_path / "run")]) == 2
    out = capsys.readouterr()
    assert "already exists in" in out.err and "password=***" in out.err
    assert not any(n.decode() in out.out + out.err for n in secret_db.needles)
    assert not (tmp_path / "run").exists()


# --------------------------------------------------------------------------- the documented URLs
def _documented_urls() -> dict[str, str]:
    """The storage URLs the starter spec and the README show, exactly as written there."""
    starter = (REPO / "share_search" / "starter.yaml").read_text()
    readme = (REPO / "README.md").read_text()
    found = {}
    for where, text in (("starter", starter), ("README", readme)):
        for line in text.splitlines():
            if "storage: postgresql" in line:
                found[where] = line.split("storage:", 1)[1].split("#", 1)[0].strip()
    assert set(found) == {"starter", "README"}, found
    return found


@pytest.mark.parametrize("where", ["starter", "README"])
def test_the_documented_postgresql_url_works(where, secret_db, monkeypatch):
    """The documented URL, with only its user, password, host and database changed to the
    test server's, opens a study (``postgresql://`` needs psycopg 3 under SQLAlchemy 2.1)."""
    from share_search.runs.study import expand_storage

    documented = _documented_urls()[where]
    admin = sqlalchemy.make_url(ADMIN_URL)
    for name in re.findall(r"\$\{(\w+)\}", documented):
        monkeypatch.setenv(name, secret_db.password)
    url = sqlalchemy.make_url(expand_storage(documented))
    assert url.drivername == documented.split("://")[0]
    if url.password in (None, "password"):  # the starter's placeholder
        url = url.set(password=secret_db.password)
    url = url.set(username=secret_db.role, host=admin.host, port=admin.port, database=admin.database)
    assert url.password == secret_db.password
    storage = open_storage(url.render_as_string(hide_password=False))
    study = optuna.create_study(study_name=f"{secret_db.role}-{where}", storage=storage)
    assert optuna.load_study(study_name=study.study_name, storage=storage).study_name == study.study_name
    storage.engine.dispose()
