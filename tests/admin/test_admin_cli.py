"""mailsuite-admin, called in-process through main(argv)."""

import io
import json

import pytest
from conftest import cli_fails, cli_ok

from mailsuite.accounts.database import SQLiteUserDatabase
from mailsuite.accounts.passwords import verify_password
from mailsuite.admin import prompt
from mailsuite.admin.cli import main


@pytest.fixture
def admin(tmp_path, capsys, monkeypatch):
    """run(*args, stdin="") -> (exit code, stdout, stderr) against a fresh data directory."""

    def run(*args, stdin=""):
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        code = main(["--data-dir", str(tmp_path / "data"), *args])
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def db_of(tmp_path):
    opened = []

    def open_db():
        database = SQLiteUserDatabase(tmp_path / "data" / "mailsuite.db")
        opened.append(database)
        return database

    yield open_db
    for database in opened:
        database.close()


ok, fails = cli_ok, cli_fails


def test_domain_round_trip(admin):
    assert ok(admin("domain", "add", "--no-dkim", "Example.COM")) == "added domain example.com\n"
    added = ok(admin("domain", "add", "bücher.example")).splitlines()
    assert added[0] == "added domain xn--bcher-kva.example"
    assert "mailsuite-admin dkim show xn--bcher-kva.example" in added[1]  # keys made too
    assert ok(admin("domain", "list")) == "example.com\nxn--bcher-kva.example\n"
    assert json.loads(ok(admin("domain", "list", "--json"))) == [
        {"name": "example.com"},
        {"name": "xn--bcher-kva.example"},
    ]
    assert ok(admin("domain", "del", "bücher.example")) == "deleted domain xn--bcher-kva.example\n"
    assert json.loads(ok(admin("domain", "list", "--json"))) == [{"name": "example.com"}]


def test_domain_errors(admin):
    ok(admin("domain", "add", "example.com"))
    fails(admin("domain", "add", "example.com"), "domain example.com already exists")
    fails(admin("domain", "add", "a..b"), "invalid domain 'a..b'")
    fails(admin("domain", "del", "example.org"), "unknown domain example.org")


def test_user_add_with_password_stdin_stores_a_verifiable_hash(admin, db_of):
    ok(admin("domain", "add", "example.com"))
    out = ok(admin("user", "add", "Bob@Example.com", "--password-stdin", stdin="s3cret pass\n"))
    assert out == "added user bob@example.com\n"
    stored = db_of().get_user("bob@example.com").password_hash
    assert verify_password("s3cret pass", stored) == (True, None)
    assert verify_password("s3cret pass\n", stored)[0] is False


def test_user_passwd_disable_enable_del_and_list(admin, db_of):
    ok(admin("domain", "add", "example.com"))
    ok(admin("domain", "add", "other.example"))
    ok(admin("user", "add", "bob@example.com", "--password-stdin", stdin="one\n"))
    ok(admin("user", "add", "zed@other.example", "--password-stdin", stdin="z\r\n"))
    assert verify_password("z", db_of().get_user("zed@other.example").password_hash)[0]

    out = ok(admin("user", "passwd", "BOB@example.com", "--password-stdin", stdin="two\n"))
    assert out == "changed the password of bob@example.com\n"
    assert verify_password("two", db_of().get_user("bob@example.com").password_hash)[0]

    assert ok(admin("user", "disable", "bob@example.com")) == "disabled user bob@example.com\n"
    assert ok(admin("user", "list")) == "bob@example.com (disabled)\nzed@other.example\n"
    listed = json.loads(ok(admin("user", "list", "example.com", "--json")))
    assert [(u["address"], u["enabled"]) for u in listed] == [("bob@example.com", False)]
    assert set(listed[0]) == {"address", "enabled", "created"}  # never the hash
    assert ok(admin("user", "enable", "bob@example.com")) == "enabled user bob@example.com\n"
    assert db_of().get_user("bob@example.com").enabled

    assert ok(admin("user", "del", "bob@example.com")) == "deleted user bob@example.com\n"
    assert json.loads(ok(admin("user", "list", "--json")))[0]["address"] == "zed@other.example"
    assert ok(admin("user", "list", "example.com")) == ""


def test_user_errors(admin):
    ok(admin("domain", "add", "example.com"))
    fails(
        admin("user", "add", "bob@example.org", "--password-stdin", stdin="x\n"), "unknown domain"
    )
    ok(admin("user", "add", "bob@example.com", "--password-stdin", stdin="x\n"))
    fails(
        admin("user", "add", "BOB@example.com", "--password-stdin", stdin="x\n"),
        "user bob@example.com already exists",
    )
    fails(admin("user", "add", "a/b@example.com", "--password-stdin", stdin="x\n"), "a/b")
    fails(admin("user", "add", "new@example.com", "--password-stdin", stdin="\n"), "empty password")
    fails(admin("user", "add", "new@example.com", "--password-stdin", stdin=""), "empty password")
    fails(admin("user", "passwd", "nobody@example.com", "--password-stdin"), "unknown user")
    fails(admin("user", "del", "nobody@example.com"), "unknown user nobody@example.com")
    fails(admin("user", "disable", "nobody@example.com"), "unknown user")
    fails(admin("user", "enable", "bob"), "missing '@'")
    fails(admin("user", "list", "example.org"), "unknown domain example.org")
    fails(admin("domain", "del", "example.com"), "still has 1 user")


class _Terminal(io.StringIO):
    def isatty(self):
        return True


@pytest.fixture
def terminal(monkeypatch, tmp_path, capsys):
    """Run main() as if on a terminal, answering getpass prompts from ``answers``."""

    def run(answers, *args):
        replies = iter(answers)
        prompts = []

        def fake_getpass(text):
            prompts.append(text)
            return next(replies)

        monkeypatch.setattr("sys.stdin", _Terminal())
        monkeypatch.setattr(prompt.getpass, "getpass", fake_getpass)
        code = main(["--data-dir", str(tmp_path / "data"), *args])
        out, err = capsys.readouterr()
        return (code, out, err), prompts

    return run


def test_interactive_password_is_asked_twice(admin, terminal, db_of):
    ok(admin("domain", "add", "example.com"))
    result, prompts = terminal(["pw", "pw"], "user", "add", "bob@example.com")
    assert ok(result) == "added user bob@example.com\n"
    assert len(prompts) == 2 and "bob@example.com" in prompts[0]
    assert verify_password("pw", db_of().get_user("bob@example.com").password_hash)[0]

    result, _ = terminal(["new", "typo"], "user", "passwd", "bob@example.com")
    fails(result, "the passwords do not match")
    result, _ = terminal(["", ""], "user", "passwd", "bob@example.com")
    fails(result, "empty password refused")
    assert verify_password("pw", db_of().get_user("bob@example.com").password_hash)[0]


def test_no_terminal_and_no_password_stdin(admin):
    ok(admin("domain", "add", "example.com"))
    fails(admin("user", "add", "bob@example.com"), "use --password-stdin")


def test_unknown_domain_is_reported_before_asking_for_a_password(terminal):
    result, prompts = terminal(["pw", "pw"], "user", "add", "bob@example.com")
    fails(result, "unknown domain example.com")
    assert prompts == []


def test_alias_round_trip(admin, db_of):
    ok(admin("domain", "add", "example.com"))
    ok(admin("user", "add", "bob@example.com", "--password-stdin", stdin="x\n"))
    out = ok(admin("alias", "add", "Sales@example.com", "BOB@example.com", "Ext@Example.org"))
    assert out == (
        "added alias sales@example.com -> bob@example.com\n"
        "added alias sales@example.com -> Ext@example.org\n"
    )
    ok(admin("alias", "add", "@example.com", "bob@example.com"))
    assert ok(admin("alias", "list")) == (
        "@example.com -> bob@example.com\n"
        "sales@example.com -> bob@example.com\n"
        "sales@example.com -> Ext@example.org\n"
    )
    assert json.loads(ok(admin("alias", "list", "example.com", "--json")))[1] == {
        "source": "sales@example.com",
        "target": "bob@example.com",
    }
    resolution = db_of().resolve_recipient("sales@example.com")
    assert resolution.mailboxes == ("bob@example.com",)
    assert resolution.remote == ("Ext@example.org",)

    out = ok(admin("alias", "del", "sales@example.com", "Ext@example.org"))
    assert out == "deleted alias sales@example.com -> Ext@example.org\n"
    assert ok(admin("alias", "del", "@EXAMPLE.com")) == "deleted alias @example.com\n"
    assert ok(admin("alias", "list")) == "sales@example.com -> bob@example.com\n"


def test_alias_errors(admin):
    ok(admin("domain", "add", "example.com"))
    fails(admin("alias", "add", "sales@example.org", "bob@example.com"), "unknown domain")
    ok(admin("alias", "add", "sales@example.com", "bob@example.com"))
    fails(admin("alias", "add", "sales@example.com", "bob@example.com"), "already exists")
    # a bad target anywhere in the list adds nothing
    fails(admin("alias", "add", "team@example.com", "bob@example.com", "bad@a..b"), "a..b")
    assert ok(admin("alias", "list", "--json")) == (
        '[\n  {\n    "source": "sales@example.com",\n    "target": "bob@example.com"\n  }\n]\n'
    )
    fails(admin("alias", "add", "../x@example.com", "bob@example.com"), "../x@example.com")
    fails(admin("alias", "del", "team@example.com"), "unknown alias team@example.com")
    fails(admin("alias", "del", "sales@example.com", "x@example.org"), "unknown alias")
    fails(admin("alias", "list", "example.org"), "unknown domain example.org")
    fails(admin("domain", "del", "example.com"), "1 alias")


def test_data_dir_after_the_command(tmp_path, capsys):
    data = tmp_path / "late"
    assert main(["domain", "add", "example.com", "--data-dir", str(data)]) == 0
    assert (data / "mailsuite.db").exists()
    capsys.readouterr()
    assert main(["domain", "list", "--data-dir", str(data)]) == 0
    assert capsys.readouterr().out == "example.com\n"


def test_config_file_sets_the_data_dir(tmp_path, capsys):
    config = tmp_path / "mailsuite.toml"
    config.write_text(f'[server]\ndata_dir = "{tmp_path / "from-config"}"\n')
    assert main(["--config", str(config), "domain", "add", "example.com"]) == 0
    assert (tmp_path / "from-config" / "mailsuite.db").exists()


def test_config_errors(tmp_path, capsys):
    config = tmp_path / "bad.toml"
    config.write_text("[server]\nbogus = 1\n")
    assert main(["--config", str(config), "domain", "list"]) == 1
    err = capsys.readouterr().err
    assert err == "mailsuite-admin: error: config error: server.bogus: unknown key\n"
    assert main(["--config", str(tmp_path / "missing.toml"), "domain", "list"]) == 1
    assert "cannot read" in capsys.readouterr().err


def test_unreadable_database_is_a_one_line_error(tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    (data / "mailsuite.db").write_bytes(b"this is not a database, just some bytes" * 100)
    assert main(["--data-dir", str(data), "domain", "list"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("mailsuite-admin: error: ")
    assert "mailsuite.db" in err and "Traceback" not in err


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["user"],
        ["frobnicate"],
        ["user", "add"],
        ["alias", "add", "sales@example.com"],
        ["domain", "list", "--bogus"],
    ],
)
def test_usage_errors_exit_2(argv, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc_info:
        main(["--data-dir", str(tmp_path), *argv])
    assert exc_info.value.code == 2
    assert "usage: mailsuite-admin" in capsys.readouterr().err
