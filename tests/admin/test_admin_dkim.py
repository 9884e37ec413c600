"""mailsuite-admin dkim ... and the key store under it, called in-process through main(argv)."""

import base64
import io
import json
import os
import pwd
import re
import stat
import threading

import dkim
import pytest
from conftest import cli_fails, cli_ok
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from mailsuite.admin.cli import main
from mailsuite.authn.keys import DKIMKeyStore, KeyStoreError

ok, fails = cli_ok, cli_fails

MESSAGE = (
    b"From: Bob <bob@example.com>\r\n"
    b"To: Ann <ann@example.org>\r\n"
    b"Subject: signed\r\n"
    b"Date: Mon, 07 Dec 2026 10:00:00 +0000\r\n"
    b"Message-ID: <1@example.com>\r\n"
    b"\r\n"
    b"Hello, this is signed.\r\n"
)

# One zone-file record as `dkim show` prints it: name, TTL, class, type, ( "..." "..." ).
RECORD = re.compile(r'^(\S+)\. (\d+) IN TXT \(((?:\s*"[^"]*")+)\s*\)$', re.MULTILINE)


@pytest.fixture
def data(tmp_path):
    return tmp_path / "data"


@pytest.fixture
def admin(data, capsys, monkeypatch):
    """run(*args) -> (exit code, stdout, stderr); at the end, no output held any key secret."""
    outputs = []
    secrets_seen = set()

    def run(*args):
        monkeypatch.setattr("sys.stdin", io.StringIO(""))
        code = main(["--data-dir", str(data), *args])
        out, err = capsys.readouterr()
        outputs.append(out + err)
        secrets_seen.update(_secrets(data))
        return code, out, err

    yield run
    secrets_seen.update(_secrets(data))
    for output in outputs:
        assert "PRIVATE KEY" not in output
        for secret in secrets_seen:
            assert secret not in output


def _secrets(data):
    """Pieces of every private key on disk: the PEM body lines (but those that only hold the
    public modulus, which the TXT record shows too), the Ed25519 seed."""
    store = DKIMKeyStore(data / "dkim")
    public = " ".join(key.txt_value() for domain in store.domains() for key in store.keys(domain))
    found = set()
    for path in (data / "dkim").glob("*/*.key"):
        for line in path.read_text().splitlines():
            if line and not line.startswith("-----") and line not in public:
                found.add(line.strip())
    return found


def _parse_show(out):
    """{dns name: (ttl, joined TXT value)} of `dkim show` output, comments skipped."""
    records = {}
    for name, ttl, strings in RECORD.findall(out):
        parts = re.findall(r'"([^"]*)"', strings)
        assert all(len(part.encode()) <= 255 for part in parts)
        records[name] = (int(ttl), "".join(parts))
    return records


def _tags(value):
    return dict(tag.strip().split("=", 1) for tag in value.split(";"))


def _listed(admin):
    return json.loads(ok(admin("dkim", "list", "--json")))


def test_domain_add_makes_an_rsa_and_an_ed25519_key(admin, data):
    out = ok(admin("domain", "add", "Example.COM"))
    lines = out.splitlines()
    assert lines[0] == "added domain example.com"
    assert "mailsuite-admin dkim show example.com" in lines[1]
    keys = _listed(admin)
    assert sorted(k["algorithm"] for k in keys) == ["ed25519", "rsa"]
    assert all(k["domain"] == "example.com" and k["active"] for k in keys)
    assert set(keys[0]) == {"domain", "selector", "algorithm", "created", "active"}
    rsa_key = next(
        k for k in DKIMKeyStore(data / "dkim").keys("example.com") if k.algorithm == "rsa"
    )
    assert rsa_key.key_bits() == 2048


def test_domain_add_no_dkim_makes_none(admin, data):
    assert ok(admin("domain", "add", "example.com", "--no-dkim")) == "added domain example.com\n"
    assert _listed(admin) == []
    assert ok(admin("dkim", "list")) == ""
    assert not (data / "dkim" / "example.com").exists()


def test_generate_list_and_show_both_algorithms(admin, data):
    ok(admin("domain", "add", "example.com", "--no-dkim"))
    out = ok(admin("dkim", "generate", "example.com"))
    assert re.match(r"made DKIM key ms\d{6}r \(rsa-2048\) for example\.com", out)
    out = ok(
        admin("dkim", "generate", "EXAMPLE.com", "--algorithm", "ed25519", "--selector", "ed1")
    )
    assert out.startswith("made DKIM key ed1 (ed25519) for example.com")

    text = ok(admin("dkim", "list")).splitlines()
    assert len(text) == 2
    assert any(re.fullmatch(r"example\.com ms\d{6}r rsa \d{4}-\d\d-\d\d active", t) for t in text)
    assert any(re.fullmatch(r"example\.com ed1 ed25519 \d{4}-\d\d-\d\d active", t) for t in text)

    store = DKIMKeyStore(data / "dkim")
    keys = {k.algorithm: k for k in store.keys("example.com")}
    records = _parse_show(ok(admin("dkim", "show", "example.com")))
    assert set(records) == {keys["rsa"].dns_name(), "ed1._domainkey.example.com"}

    ttl, value = records[keys["rsa"].dns_name()]
    assert ttl == 3600 and value == keys["rsa"].txt_value()
    tags = _tags(value)
    assert (tags["v"], tags["k"]) == ("DKIM1", "rsa")
    public = serialization.load_der_public_key(base64.b64decode(tags["p"]))
    private = serialization.load_pem_private_key(keys["rsa"].private_key, password=None)
    assert isinstance(public, rsa.RSAPublicKey)
    assert public.public_numbers() == private.public_key().public_numbers()

    _, value = records["ed1._domainkey.example.com"]
    tags = _tags(value)
    assert (tags["v"], tags["k"]) == ("DKIM1", "ed25519")
    seed = base64.b64decode(keys["ed25519"].private_key, validate=True)
    assert len(seed) == 32
    expected = (
        ed25519.Ed25519PrivateKey.from_private_bytes(seed)
        .public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )
    assert base64.b64decode(tags["p"]) == expected
    assert keys["rsa"].signature_algorithm == b"rsa-sha256"
    assert keys["ed25519"].signature_algorithm == b"ed25519-sha256"
    assert "private_key" not in repr(keys["rsa"])


def test_key_files_are_private(admin, data):
    ok(admin("domain", "add", "example.com"))
    directory = data / "dkim" / "example.com"
    for path in (data / "dkim", directory):
        assert stat.S_IMODE(path.stat().st_mode) == 0o700
    files = list(directory.iterdir())
    assert len([p for p in files if p.suffix == ".key"]) == 2
    assert not [p for p in files if p.name.endswith(".tmp")]
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_active_keys_sign_and_verify_with_dkimpy(admin, data):
    ok(admin("domain", "add", "example.com"))
    store = DKIMKeyStore(data / "dkim")
    active = store.active("example.com")
    assert sorted(k.algorithm for k in active) == ["ed25519", "rsa"]
    published = {f"{k.dns_name()}.".encode(): k.txt_value().encode() for k in active}

    def dnsfunc(name, timeout=5):
        return published.get(name)

    message = MESSAGE
    for key in active:
        header = dkim.sign(
            message,
            key.selector.encode(),
            key.domain.encode(),
            key.private_key,
            signature_algorithm=key.signature_algorithm,
            include_headers=[b"from", b"to", b"subject", b"date", b"message-id"],
        )
        message = header + message
    verifier = dkim.DKIM(message)
    assert verifier.verify(idx=0, dnsfunc=dnsfunc)
    assert verifier.verify(idx=1, dnsfunc=dnsfunc)
    assert dkim.verify(message.replace(b"Hello", b"Jello"), dnsfunc=dnsfunc) is False


def test_rotate_keeps_the_old_key_listed_and_retire_removes_it(admin, data):
    ok(admin("domain", "add", "example.com"))
    before = {k["algorithm"]: k["selector"] for k in _listed(admin)}
    out = ok(admin("dkim", "rotate", "example.com"))
    assert out.startswith("rotated the DKIM keys of example.com")
    keys = _listed(admin)
    assert len(keys) == 4
    for algorithm, old in before.items():
        mine = [k for k in keys if k["algorithm"] == algorithm]
        assert [k["active"] for k in mine if k["selector"] == old] == [False]
        assert len([k for k in mine if k["active"]]) == 1
    # Every listed key is still published: four records.
    assert len(_parse_show(ok(admin("dkim", "show", "example.com")))) == 4
    active = {k.algorithm: k.selector for k in DKIMKeyStore(data / "dkim").active("example.com")}
    assert set(active.values()).isdisjoint(before.values())

    fails(admin("dkim", "retire", "example.com", active["rsa"]), "rotate first")
    out = ok(admin("dkim", "retire", "example.com", before["rsa"]))
    assert out.startswith(f"retired DKIM key {before['rsa']} of example.com")
    assert not (data / "dkim" / "example.com" / f"{before['rsa']}.key").exists()
    assert before["rsa"] not in {k["selector"] for k in _listed(admin)}
    assert len(_parse_show(ok(admin("dkim", "show", "example.com")))) == 3
    fails(admin("dkim", "retire", "example.com", before["rsa"]), "no DKIM key")


def test_generate_rotates_out_the_active_key_of_its_algorithm(admin, data):
    ok(admin("domain", "add", "example.com", "--no-dkim"))
    ok(admin("dkim", "generate", "example.com", "--algorithm", "ed25519", "--selector", "one"))
    out = ok(
        admin("dkim", "generate", "example.com", "--algorithm", "ed25519", "--selector", "two")
    )
    assert "rotated out one" in out
    assert [(k["selector"], k["active"]) for k in _listed(admin)] == [("one", False), ("two", True)]
    fails(
        admin("dkim", "generate", "example.com", "--algorithm", "ed25519", "--selector", "one"),
        "selector one is already used",
    )


def test_rotate_twice_in_a_month_gets_fresh_selectors(data):
    store = DKIMKeyStore(data / "dkim")
    first = store.generate("example.com", "ed25519")
    second = store.rotate("example.com")[0]
    store.retire("example.com", first.selector)
    third = store.rotate("example.com")[0]
    selectors = [first.selector, second.selector, third.selector]
    assert len(set(selectors)) == 3  # a retired selector is not handed out again
    assert all(s.startswith(first.selector) for s in selectors)


def test_errors(admin, data):
    ok(admin("domain", "add", "example.com", "--no-dkim"))
    fails(admin("dkim", "generate", "example.org"), "unknown domain example.org")
    fails(admin("dkim", "rotate", "example.org"), "unknown domain example.org")
    fails(admin("dkim", "rotate", "example.com"), "no active DKIM key")
    fails(admin("dkim", "show", "example.com"), "no DKIM keys for example.com")
    fails(admin("dkim", "generate", "../etc"), "invalid domain")
    fails(admin("dkim", "show", "a/b"), "invalid domain")
    for selector in ("../x", "a/b", "..", "-x", "a.b", "x" * 64):
        fails(
            admin("dkim", "generate", "example.com", f"--selector={selector}"), "invalid selector"
        )
        fails(admin("dkim", "retire", "example.com", "--", selector), "invalid selector")
    fails(admin("dkim", "generate", "example.com", "--bits", "512"), "1024 to 4096")
    fails(
        admin("dkim", "generate", "example.com", "--algorithm", "ed25519", "--bits", "2048"),
        "rsa keys only",
    )
    assert _listed(admin) == []
    assert not (data / "dkim").exists()  # a refused command leaves nothing behind


def test_store_refuses_path_tricks(data):
    store = DKIMKeyStore(data / "dkim")
    for domain in ("..", "../x", "a/b", "/abs", ""):
        with pytest.raises(KeyStoreError):
            store.generate(domain, "ed25519")
        assert store.active(domain) == []
    with pytest.raises(KeyStoreError, match="invalid selector"):
        store.generate("example.com", "ed25519", selector="../../x")
    with pytest.raises(KeyStoreError, match="unknown DKIM algorithm"):
        store.generate("example.com", "dsa")
    assert not (data / "dkim").exists() or store.domains() == []


def test_active_sees_changes_of_another_store_without_restart(data):
    server = DKIMKeyStore(data / "dkim")
    cli = DKIMKeyStore(data / "dkim")
    assert server.active("example.com") == []
    made = cli.generate("example.com", "ed25519")
    assert server.active("example.com") == [made]
    assert server.active("Example.COM.") == [made]
    assert server.active("example.com") is not server.active("example.com")  # callers' own list
    new = cli.rotate("example.com")
    assert server.active("example.com") == new
    cli.retire("example.com", made.selector)
    assert server.active("example.com") == new
    assert server.domains() == ["example.com"]


def test_active_from_many_threads_while_the_cli_rotates(data):
    server = DKIMKeyStore(data / "dkim")
    cli = DKIMKeyStore(data / "dkim")
    cli.generate("example.com", "ed25519")
    errors = []
    stop = threading.Event()

    def sign_loop():
        try:
            while not stop.is_set():
                keys = server.active("example.com")
                assert len(keys) == 1 and keys[0].active
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=sign_loop) for _ in range(4)]
    for thread in threads:
        thread.start()
    for _ in range(10):
        old = cli.active("example.com")[0]
        cli.rotate("example.com")
        cli.retire("example.com", old.selector)
    stop.set()
    for thread in threads:
        thread.join()
    assert errors == []
    assert server.active("example.com") == cli.active("example.com")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create files for another user")
def test_as_root_new_files_get_the_owner_of_the_handed_over_data_dir(data):
    nobody = pwd.getpwnam("nobody")
    data.mkdir()
    os.chown(data, nobody.pw_uid, nobody.pw_gid)  # what the server's --uid hand-over leaves
    DKIMKeyStore(data / "dkim").generate("example.com", "ed25519")
    made = [data / "dkim", *(data / "dkim").rglob("*")]
    assert len(made) == 4  # dkim/, example.com/, the key, state.json
    assert {(p.stat().st_uid, p.stat().st_gid) for p in made} == {(nobody.pw_uid, nobody.pw_gid)}


def test_a_broken_state_file_is_a_clear_error(data):
    store = DKIMKeyStore(data / "dkim")
    store.generate("example.com", "ed25519")
    (data / "dkim" / "example.com" / "state.json").write_text("[1]")
    with pytest.raises(KeyStoreError, match="unknown format"):
        store.keys("example.com")
    with pytest.raises(KeyStoreError, match="unknown format"):
        store.active("example.com")
