"""mailsuite-admin as a real process: exit codes, stdin, stderr, and the -m entry point."""

import json
import os
import subprocess
import sys
from pathlib import Path

from mailsuite.accounts.database import SQLiteUserDatabase
from mailsuite.accounts.passwords import verify_password

REPO_ROOT = Path(__file__).resolve().parents[2]


def run(*args, stdin=""):
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    return subprocess.run(
        [sys.executable, "-m", "mailsuite.admin", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )


def test_round_trip_through_processes(tmp_path):
    data = str(tmp_path / "data")
    result = run("--data-dir", data, "domain", "add", "--no-dkim", "example.com")
    assert (result.returncode, result.stdout, result.stderr) == (
        0,
        "added domain example.com\n",
        "",
    )
    result = run(
        "--data-dir", data, "user", "add", "bob@example.com", "--password-stdin", stdin="pw\n"
    )
    assert (result.returncode, result.stdout) == (0, "added user bob@example.com\n")
    result = run("--data-dir", data, "user", "list", "--json")
    assert [u["address"] for u in json.loads(result.stdout)] == ["bob@example.com"]

    db = SQLiteUserDatabase(tmp_path / "data" / "mailsuite.db")
    try:
        assert verify_password("pw", db.get_user("bob@example.com").password_hash)[0]
    finally:
        db.close()


def test_expected_error_is_one_line_and_exit_1(tmp_path):
    data = str(tmp_path / "data")
    run("--data-dir", data, "domain", "add", "example.com")
    run("--data-dir", data, "user", "add", "bob@example.com", "--password-stdin", stdin="pw\n")
    result = run("--data-dir", data, "domain", "del", "example.com")
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == (
        "mailsuite-admin: error: domain example.com still has 1 user and 0 aliases; "
        "delete them first\n"
    )


def test_unknown_config_key(tmp_path):
    config = tmp_path / "mailsuite.toml"
    config.write_text("[server]\nbogus = 1\n")
    result = run("--config", str(config), "--data-dir", str(tmp_path), "domain", "list")
    assert result.returncode != 0
    assert "server.bogus" in result.stderr
    assert "Traceback" not in result.stderr


def test_usage_error_exits_2(tmp_path):
    result = run("--data-dir", str(tmp_path), "user", "frobnicate")
    assert result.returncode == 2
    assert "usage: mailsuite-admin user" in result.stderr
