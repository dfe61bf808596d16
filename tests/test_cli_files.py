"""Nothing of the user's is destroyed: every command that takes --db or writes a file, driven as a user does."""

from __future__ import annotations

import hashlib
import io
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from reliable_graph.demo import ScenarioParams, run_demo

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
SCRIPT = Path(sys.executable).parent / "reliable-graph"


def cli(*argv: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """The installed command in a new process (this checkout and the tests' graphs importable)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(TESTS)])}
    return subprocess.run(
        [str(SCRIPT), *argv], capture_output=True, text=True, timeout=300, check=False, env=env, cwd=cwd
    )


def error_line(result: subprocess.CompletedProcess[str], *needles: str) -> str:
    """The one `error: ...` line of a refused command (exit code 2, nothing on stdout)."""
    assert result.returncode == 2, result.stderr
    assert result.stdout == "" and "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def customers_db(path: Path) -> str:
    """A user's own SQLite database with a `customers` table; returns the file's digest."""
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    conn.executemany("INSERT INTO customers (name) VALUES (?)", [("Ana",), ("Bo",)])
    conn.commit()
    conn.close()
    return digest(path)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def customers(path: Path) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        return [row[0] for row in conn.execute("SELECT name FROM customers ORDER BY id")]
    finally:
        conn.close()


@pytest.fixture(scope="module")
def runs_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoint database with reliable-graph threads, for `report`."""
    db = tmp_path_factory.mktemp("files") / "runs.sqlite"
    run_demo(runs=4, seed=7, db=db, params=ScenarioParams(steps=2), as_json=True, out=io.StringIO())
    return db


def test_demo_never_touches_a_database_it_did_not_create(tmp_path: Path) -> None:
    users = tmp_path / "shop.sqlite"
    before = customers_db(users)
    line = error_line(cli("demo", "--runs", "1", "--steps", "2", "--db", str(users)), "'--db'", str(users))
    assert "did not create" in line and "never overwritten" in line and "another --db path" in line
    assert digest(users) == before and customers(users) == ["Ana", "Bo"]
    assert not Path(f"{users}-wal").exists() and not Path(f"{users}-journal").exists()


def test_demo_replaces_only_its_own_file_and_says_so(tmp_path: Path) -> None:
    db = tmp_path / "demo.sqlite"
    first = cli("demo", "--runs", "2", "--steps", "2", "--db", str(db))
    assert first.returncode == 0, first.stderr
    assert f"checkpoints: SQLite file {db} (durability='sync')\n" in first.stdout
    again = cli("demo", "--runs", "2", "--steps", "2", "--db", str(db))
    assert again.returncode == 0, again.stderr
    assert "replacing the one an earlier demo run wrote" in again.stdout
    # the user adds a table to some other file and points the demo at it: refused
    other = tmp_path / "other.sqlite"
    customers_db(other)
    error_line(cli("demo", "--runs", "1", "--steps", "2", "--db", str(other)), "did not create")
    assert customers(other) == ["Ana", "Bo"]


def test_chaos_inbox_report_and_calibrate_leave_a_users_database_alone(tmp_path: Path) -> None:
    users = tmp_path / "shop.sqlite"
    before = customers_db(users)
    chaos = cli("chaos", "--graph", "chaos_graphs:user_pipeline", "--input", "{}", "--db", str(users))
    error_line(chaos, "'--db'", str(users), "without LangGraph checkpoints")
    error_line(cli("inbox", "list", "--db", str(users)), "--db", str(users), "not a LangGraph database")
    error_line(cli("report", "--db", str(users)), "--db", "no 'checkpoints' table")
    reviews = cli("calibrate", "--from-reviews", "--db", str(users), "--target-silent-failure", "0.1")
    error_line(reviews, "--db", "no escalation inbox here")
    assert digest(users) == before and customers(users) == ["Ana", "Bo"]


def test_report_chart_never_overwrites_and_treats_a_directory_as_one(runs_db: Path, tmp_path: Path) -> None:
    mine = tmp_path / "mine.png"
    mine.write_bytes(b"my own picture")
    refused = cli("report", "--db", str(runs_db), "--chart", str(mine))
    error_line(refused, "--chart", str(mine), "never overwritten without --force")
    assert mine.read_bytes() == b"my own picture"

    charts = tmp_path / "charts"
    charts.mkdir()
    written = cli("report", "--db", str(runs_db), "--chart", str(charts))
    assert written.returncode == 0, written.stderr
    assert f"chart written to {charts / 'reliability.png'}" in written.stderr
    assert (charts / "reliability.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not Path(f"{charts}.png").exists()
    size = (charts / "reliability.png").stat().st_size
    error_line(cli("report", "--db", str(runs_db), "--chart", str(charts)), "reliability.png exists", "--force")

    forced = cli("report", "--db", str(runs_db), "--chart", str(mine), "--force", "--json")
    assert forced.returncode == 0, forced.stderr
    assert mine.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and (charts / "reliability.png").stat().st_size == size
