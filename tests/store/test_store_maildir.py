"""MaildirStore: safe paths, durable directory creation, link-based delivery and its fallback."""

from __future__ import annotations

import errno
import os
import re
import shutil
import stat
import threading

import pytest

from mailsuite.store.maildir import MaildirStore

NAME_RE = re.compile(r"(\d+)\.M(\d+)P(\d+)Q(\d+)\.([^,/]+),S=(\d+)")


@pytest.fixture
def store(tmp_path):
    return MaildirStore(tmp_path / "mail", "mx.example.org")


@pytest.fixture
def message(tmp_path):
    path = tmp_path / "message.eml"
    path.write_bytes(b"From: a@example.org\r\nSubject: t\r\n\r\nbody \x00\xff\r\n.\r\n")
    return path


def test_deliver_is_byte_exact_in_new(store, message, tmp_path):
    name = store.deliver_file(message, "alice@example.org")

    delivered = tmp_path / "mail" / "example.org" / "alice" / "new" / name
    assert delivered.read_bytes() == message.read_bytes()
    match = NAME_RE.fullmatch(name)
    assert match is not None
    assert match.group(3) == str(os.getpid())
    assert match.group(5) == "mx.example.org"
    assert int(match.group(6)) == message.stat().st_size


def test_two_recipients_share_one_inode(store, message):
    first = store.deliver_file(message, "alice@example.org")
    second = store.deliver_file(message, "bob@example.net")

    a = store.maildir_path("alice@example.org") / "new" / first
    b = store.maildir_path("bob@example.net") / "new" / second
    assert first != second
    assert a.stat().st_ino == b.stat().st_ino == message.stat().st_ino
    assert message.stat().st_nlink == 3


def test_ensure_maildir_creates_private_subdirectories(store, tmp_path):
    root = store.ensure_maildir("carol@example.org")

    assert root == tmp_path / "mail" / "example.org" / "carol"
    for sub in ("tmp", "new", "cur"):
        assert (root / sub).is_dir()
        assert stat.S_IMODE((root / sub).stat().st_mode) == 0o700
    assert store.ensure_maildir("carol@example.org") == root


def test_unique_names_differ_across_calls_and_threads(store):
    names = [store.unique_name(10) for _ in range(1000)]
    results: list[list[str]] = []

    def worker():
        results.append([store.unique_name(10) for _ in range(250)])

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for batch in results:
        names.extend(batch)
    assert len(names) == 3000
    assert len(set(names)) == 3000


def test_concurrent_deliveries_to_one_new_user(store, message):
    names: list[str] = []

    def worker():
        for _ in range(20):
            names.append(store.deliver_file(message, "dave@example.org"))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    new = store.maildir_path("dave@example.org") / "new"
    assert sorted(os.listdir(new)) == sorted(names)
    assert len(set(names)) == 80


def test_hostname_is_encoded_in_names(tmp_path):
    store = MaildirStore(tmp_path, "odd/host:name")
    assert store.unique_name(1).split(".", 2)[2] == r"odd\057host\072name,S=1"


@pytest.mark.parametrize(
    "address",
    [
        "../x@d",
        "a/b@d",
        "x@../d",
        "..@d",
        ".@d",
        ".x@d",
        "x.@d",
        "a..b@d",
        "x@d/e",
        "x@.",
        "x@d..e",
        "x@-d",
        "Alice@example.org",
        "alice@Example.org",
        "x\x00@d",
        "@d",
        "x@",
        "nodomain",
        "x@d@e",
        "a" * 65 + "@d",
    ],
)
def test_unsafe_addresses_are_refused(store, address):
    with pytest.raises(ValueError):
        store.maildir_path(address)
    with pytest.raises(ValueError):
        store.ensure_maildir(address)


@pytest.mark.parametrize(
    "address",
    ["a.b+tag@example.org", "o'neil@xn--bcher-kva.example", "tmp@localhost", "x_y=z@a-b.c"],
)
def test_unusual_but_safe_addresses_are_accepted(store, address):
    local, domain = address.rsplit("@", 1)
    assert store.maildir_path(address) == store.mail_dir / domain / local


def test_symlink_out_of_the_mail_dir_is_refused(tmp_path):
    mail = tmp_path / "mail"
    mail.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (mail / "evil.example").symlink_to(outside)
    store = MaildirStore(mail, "h")
    with pytest.raises(ValueError):
        store.maildir_path("x@evil.example")


def _exdev_link(src, dst):
    raise OSError(errno.EXDEV, "Invalid cross-device link", str(dst))


def test_cross_device_fallback_copies_via_tmp(tmp_path, message):
    store = MaildirStore(tmp_path / "mail", "h", link=_exdev_link)

    name = store.deliver_file(message, "erin@example.org")

    root = store.maildir_path("erin@example.org")
    delivered = root / "new" / name
    assert delivered.read_bytes() == message.read_bytes()
    assert delivered.stat().st_ino != message.stat().st_ino
    assert stat.S_IMODE(delivered.stat().st_mode) == 0o600
    assert os.listdir(root / "tmp") == []


def test_other_link_errors_propagate(tmp_path, message):
    def failing_link(src, dst):
        raise OSError(errno.EIO, "I/O error")

    store = MaildirStore(tmp_path / "mail", "h", link=failing_link)
    with pytest.raises(OSError) as info:
        store.deliver_file(message, "erin@example.org")
    assert info.value.errno == errno.EIO


def test_maildir_removed_while_running_is_recreated(store, message):
    store.deliver_file(message, "frank@example.org")
    shutil.rmtree(store.maildir_path("frank@example.org"))

    name = store.deliver_file(message, "frank@example.org")

    assert (store.maildir_path("frank@example.org") / "new" / name).exists()


def test_messages_of_one_second_get_uids_in_delivery_order(store, message, tmp_path, monkeypatch):
    """Microseconds are zero-padded in names: 95,000 us before 120,000 us of the same second
    also in name order, which is the order the IMAP index gives new files their UIDs."""
    from mailsuite.store.index import FolderIndex

    now = [1_700_000_000_095_000_000]
    monkeypatch.setattr("mailsuite.store.names.time.time_ns", lambda: now[0])
    first = store.deliver_file(message, "alice@example.org")
    now[0] = 1_700_000_000_120_000_000
    second = store.deliver_file(message, "alice@example.org")
    assert ".M095000P" in first and ".M120000P" in second
    index = FolderIndex(tmp_path / "mail" / "example.org" / "alice")
    index.sync()
    assert [r.key for r in index.records()] == [first, second]
