"""mailsuite-admin quickstart: a real host's configuration, domain, keys and user in one command,
and the same command again changing nothing."""

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import dns.zone
import pytest
from conftest import cli_fails, cli_ok

from mailsuite.accounts.database import SQLiteUserDatabase
from mailsuite.accounts.passwords import verify_password
from mailsuite.admin import quickstart
from mailsuite.admin.cli import main
from mailsuite.authn.keys import DKIMKeyStore
from mailsuite.config import ListenAddress, load_config

ok, fails = cli_ok, cli_fails

REPO_ROOT = Path(__file__).resolve().parents[2]
ARGS = ("--hostname", "Mail.Example.com", "--domain", "example.com", "--user", "You@example.com")
PASSWORD_LINE = re.compile(
    r"^password of you@example\.com \(shown only this once, keep it\): (\S+)$", re.M
)


@pytest.fixture
def paths(tmp_path):
    return tmp_path / "data", tmp_path / "etc" / "mailsuite.toml"


@pytest.fixture
def admin(paths, capsys, monkeypatch):
    """run(*args, stdin="") -> (exit code, stdout, stderr) with --data-dir and quickstart's
    --config pointing into a temporary directory."""
    data, target = paths

    def run(*args, stdin=""):
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        code = main(["--data-dir", str(data), *args])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def quick(admin, paths, *extra, stdin=""):
    return admin("quickstart", *ARGS, "--config", str(paths[1]), *extra, stdin=stdin)


def zone_of(out):
    """The zone-file part of quickstart's output, parsed."""
    text = out[out.index("; DNS records for") : out.index("\nMail client settings")]
    return dns.zone.from_text(text, origin="example.com", relativize=False, check_origin=False)


def open_db(data):
    return SQLiteUserDatabase(data / "mailsuite.db")


def test_first_run_writes_a_loadable_config_and_sets_everything_up(admin, paths):
    data, target = paths
    out = ok(quick(admin, paths, "--password-stdin", stdin="s3cret pass\n"))

    config = load_config(target)  # the file alone, as twistd will read it
    assert config.hostname == config.public_hostname == "mail.example.com"
    assert config.data_dir == data.resolve()
    ports = {"smtp": 25, "submission": 587, "submissions": 465, "imap": 143, "imaps": 993}
    ports |= {"pop3": 110, "pop3s": 995, "http": 80, "https": 443}
    for role, port in ports.items():
        listen = getattr(config, role).listen
        assert listen == (ListenAddress("0.0.0.0", port), ListenAddress("::", port)), role
        assert config.public_port(role) == port
    assert config.tls.cert_file is None and not config.acme.enabled
    assert config.acme.email == "you@example.com"
    assert "\n# " in target.read_text()  # commented
    assert oct(target.stat().st_mode & 0o777) == "0o644"

    db = open_db(data)
    try:
        assert db.list_domains() == ["example.com"]
        assert verify_password("s3cret pass", db.get_user("you@example.com").password_hash)[0]
        assert db.resolve_recipient("postmaster@example.com").mailboxes == ("you@example.com",)
    finally:
        db.close()
    keys = DKIMKeyStore(data / "dkim").keys("example.com")
    assert sorted(k.algorithm for k in keys) == ["ed25519", "rsa"]

    assert out.startswith(f"wrote configuration {target}\nadded domain example.com\n")
    assert "added user you@example.com\n" in out
    assert not PASSWORD_LINE.search(out)  # given on stdin: not printed
    zone = zone_of(out)
    assert zone.find_rdataset("example.com.", "MX")[0].to_text() == "10 mail.example.com."
    for key in keys:
        [txt] = zone.find_rdataset(f"{key.dns_name()}.", "TXT")
        assert b"".join(txt.strings).decode() == key.txt_value()
    srv = zone.find_rdataset("_submissions._tcp.example.com.", "SRV")[0]
    assert srv.to_text() == "0 1 465 mail.example.com."
    assert "; WARNING: public.ipv4 and public.ipv6 are not set" in out
    assert "  incoming  IMAP  mail.example.com  port 993  SSL/TLS\n" in out
    assert "  outgoing  SMTP  mail.example.com  port 465  SSL/TLS\n" in out
    assert re.search(r"^ +or  port 587  STARTTLS$", out, re.M)
    assert "user name you@example.com" in out
    assert out.endswith(
        "  twistd --uid mail --gid mail --pidfile /run/mailsuite.pid --logfile "
        f"/var/log/mailsuite.log mailsuite --config {target}\n"
    )


def test_generated_password_is_printed_once_and_a_second_run_changes_nothing(admin, paths):
    data, target = paths
    first = ok(quick(admin, paths))
    [password] = PASSWORD_LINE.findall(first)
    assert re.fullmatch(r"([a-z2-9]{6}-){3}[a-z2-9]{6}", password)
    db = open_db(data)
    try:
        stored = db.get_user("you@example.com").password_hash
        assert verify_password(password, stored)[0]
    finally:
        db.close()
    config_before = target.read_bytes()
    stat_before = target.stat()
    keys_before = DKIMKeyStore(data / "dkim").keys("example.com")

    second = ok(quick(admin, paths))
    assert not PASSWORD_LINE.search(second)
    assert password not in second
    assert second.startswith(
        f"configuration {target} is already as quickstart writes it: left alone\n"
        "domain example.com exists\n"
        "kept the active DKIM keys of example.com (ed25519, rsa)\n"
        "user you@example.com exists: its password is unchanged"
    )
    assert "added" not in second
    assert target.read_bytes() == config_before
    assert target.stat().st_mtime_ns == stat_before.st_mtime_ns
    assert not target.with_name("mailsuite.toml.bak").exists()
    assert DKIMKeyStore(data / "dkim").keys("example.com") == keys_before
    db = open_db(data)
    try:
        assert db.get_user("you@example.com").password_hash == stored
        assert len(db.list_aliases()) == 1
    finally:
        db.close()
    # The same records both times.
    assert first[first.index("; DNS records") :] == second[second.index("; DNS records") :]


def test_refuses_to_replace_a_different_config_without_force(admin, paths):
    data, target = paths
    target.parent.mkdir()
    target.write_text("# mine\n")
    err = fails(quick(admin, paths), f"{target} exists and differs")
    assert "--force" in err
    assert target.read_text() == "# mine\n"
    assert not data.exists()  # refused before anything was made

    out = ok(quick(admin, paths, "--force"))
    assert f"kept the previous configuration as {target}.bak\n" in out
    assert target.with_name("mailsuite.toml.bak").read_text() == "# mine\n"
    assert load_config(target).hostname == "mail.example.com"
    # Other arguments make another file: refused again.
    other = ("--hostname", "mx.example.com", *ARGS[2:])
    fails(admin("quickstart", *other, "--config", str(target)), "differs")


def test_config_given_before_the_command_is_the_target_when_it_exists(admin, paths):
    data, target = paths
    ok(quick(admin, paths))
    out = ok(admin("--config", str(target), "quickstart", *ARGS))
    assert out.startswith(f"configuration {target} is already as quickstart writes it")
    fails(
        admin("--config", str(target.with_name("missing.toml")), "quickstart", *ARGS),
        "cannot read",
    )


def test_default_paths(admin, tmp_path, monkeypatch):
    assert quickstart.DEFAULT_DATA_DIR == "/var/lib/mailsuite"
    monkeypatch.setattr(quickstart, "DEFAULT_DATA_DIR", str(tmp_path / "var-lib"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert main(["quickstart", *ARGS]) == 0
    config = load_config(tmp_path / "mailsuite.toml")
    assert config.data_dir == tmp_path / "var-lib"
    assert (tmp_path / "var-lib" / "mailsuite.db").exists()


def test_bad_arguments_change_nothing(admin, paths):
    data, target = paths
    fails(
        admin("quickstart", *ARGS[:4], "--user", "you@other.example", "--config", str(target)),
        "not an address at --domain example.com",
    )
    fails(
        admin("quickstart", "--hostname", "mail", *ARGS[2:], "--config", str(target)),
        "fully qualified",
    )
    fails(admin("quickstart", *ARGS[:2], "--domain", "a..b", *ARGS[4:]), "invalid domain")
    fails(quick(admin, paths, "--password-stdin", stdin="\n"), "empty password refused")
    assert not target.exists() and not data.exists()


def test_as_processes(tmp_path):
    """The console entry point end to end: quickstart twice, then the dns command it names."""
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    target = tmp_path / "mailsuite.toml"

    def run(*args, stdin=""):
        return subprocess.run(
            [sys.executable, "-m", "mailsuite.admin", *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )

    base = ("--data-dir", str(tmp_path / "data"), "quickstart", *ARGS, "--config", str(target))
    first = run(*base, "--password-stdin", stdin="pw\n")
    assert (first.returncode, first.stderr) == (0, ""), first.stderr
    second = run(*base, "--password-stdin", stdin="other\n")  # the user exists: ignored
    assert (second.returncode, second.stderr) == (0, "")
    assert "left alone" in second.stdout and "password is unchanged" in second.stdout
    db = open_db(tmp_path / "data")
    try:
        assert verify_password("pw", db.get_user("you@example.com").password_hash)[0]
    finally:
        db.close()
    records = run("--config", str(target), "dns", "example.com", "--format", "json")
    assert records.returncode == 0
    assert '"value": "10 mail.example.com."' in records.stdout
    assert records.stderr.startswith("warning: public.ipv4 and public.ipv6 are not set")
