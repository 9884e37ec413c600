"""The maildrop view of an INBOX Maildir: snapshot, identity, wire sizes, commit."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mailsuite.store.maildir import MaildirStore
from mailsuite.store.maildrop import Maildrop, MessageGone, WireSizeCache, wire_size_of
from mailsuite.store.names import crlf_size_from_name, name_sizes, uidl_for
from mailsuite.store.names import split_info as split_name

CRLF_MESSAGE = b"Subject: a\r\n\r\nbody\r\n"


@pytest.fixture
def root(tmp_path) -> Path:
    root = tmp_path / "maildir"
    for sub in ("tmp", "new", "cur"):
        (root / sub).mkdir(parents=True)
    return root


def write(root: Path, subdir: str, name: str, data: bytes = CRLF_MESSAGE) -> Path:
    path = root / subdir / name
    path.write_bytes(data)
    return path


def test_scan_orders_by_delivery_time_and_skips_junk(root):
    write(root, "new", "1700000001.M5P1Q2.host,S=20")
    write(root, "cur", "1700000001.M40P1Q1.host,S=20:2,S")  # same second, later microsecond
    write(root, "cur", "1700000000.M999999P1Q9.host,S=20:2,")
    write(root, "new", ".hidden")
    write(root, "tmp", "1600000000.M1P1Q1.host")
    (root / "new" / "adir").mkdir()
    drop = Maildrop.scan(root)
    assert [m.base for m in drop.messages] == [
        "1700000000.M999999P1Q9.host,S=20",
        "1700000001.M5P1Q2.host,S=20",
        "1700000001.M40P1Q1.host,S=20",
    ]
    assert [m.subdir for m in drop.messages] == ["cur", "new", "cur"]
    assert drop.total_size == 3 * len(CRLF_MESSAGE)


def test_scan_of_a_missing_maildir_is_empty(tmp_path):
    drop = Maildrop.scan(tmp_path / "nothing")
    assert drop.messages == [] and drop.total_size == 0
    assert drop.commit([], []).deleted == 0


def test_base_name_is_the_identity_and_uidl():
    assert split_name("123.M1P2Q3.host,S=5:2,FS") == ("123.M1P2Q3.host,S=5", "FS")
    assert split_name("123.M1P2Q3.host,S=5") == ("123.M1P2Q3.host,S=5", None)
    assert split_name("123.M1P2Q3.host,S=5:1,old") == ("123.M1P2Q3.host,S=5", None)
    assert uidl_for("123.M1P2Q3.host,S=5") == "123.M1P2Q3.host,S=5"


@pytest.mark.parametrize("base", ["1.M1P1Q1." + "h" * 80, "1.M1P1Q1.hôst", "1.M1 P1Q1.host"])
def test_uidl_of_a_name_rfc_1939_forbids_is_a_stable_digest(base):
    uidl = uidl_for(base)
    assert uidl == uidl_for(base) and uidl != base
    assert 1 <= len(uidl) <= 70 and all(0x21 <= ord(c) <= 0x7E for c in uidl)


def test_names_of_our_store_are_valid_uidls(tmp_path):
    store = MaildirStore(tmp_path, "mx.example.com")
    name = store.unique_name(36_700_160)
    assert uidl_for(name) == name


def test_wire_size_counts_crlf_endings(tmp_path):
    crlf = write(tmp_path, "", "a", b"a\r\nb\r\n")
    bare = write(tmp_path, "", "b", b"a\nb\n")
    unterminated = write(tmp_path, "", "c", b"a\nb")
    assert wire_size_of(crlf) == wire_size_of(bare) == wire_size_of(unterminated) == 6


def test_size_cache_reads_each_file_once(root):
    path = write(root, "new", "1.M1P1Q1.h", b"x\r\n")
    cache = WireSizeCache()
    assert Maildrop.scan(root, cache).messages[0].size == 3
    # Same inode, size and mtime but other content: only a cache would still say 3.
    mtime = path.stat().st_mtime_ns
    path.write_bytes(b"\n\n\n")
    os.utime(path, ns=(mtime, mtime))
    assert Maildrop.scan(root, cache).messages[0].size == 3
    assert len(cache) == 1
    assert Maildrop.scan(root, WireSizeCache()).messages[0].size == 6


def test_commit_deletes_and_marks_seen_with_fsynced_renames(root):
    write(root, "new", "1.M1P1Q1.h")
    write(root, "new", "2.M1P1Q1.h")
    write(root, "cur", "3.M1P1Q1.h:2,F")
    write(root, "cur", "4.M1P1Q1.h:2,RS")
    drop = Maildrop.scan(root)
    one, two, three, four = drop.messages
    result = drop.commit([one], [one, two, three, four])
    assert (result.deleted, result.already_gone, result.failed) == (1, 0, [])
    assert sorted(os.listdir(root / "new")) == []
    assert sorted(os.listdir(root / "cur")) == [
        "2.M1P1Q1.h:2,S",
        "3.M1P1Q1.h:2,FS",
        "4.M1P1Q1.h:2,RS",
    ]


def test_commit_follows_renames_and_tolerates_expunges(root):
    write(root, "new", "1.M1P1Q1.h")
    write(root, "new", "2.M1P1Q1.h")
    drop = Maildrop.scan(root)
    moved, expunged = drop.messages
    # Another session (IMAP) flags one message and expunges the other.
    os.rename(root / "new" / moved.name, root / "cur" / f"{moved.base}:2,T")
    os.unlink(root / "new" / expunged.name)
    with drop.open(moved) as fh:
        assert fh.read() == CRLF_MESSAGE
    with pytest.raises(MessageGone):
        drop.open(expunged)
    result = drop.commit([moved, expunged])
    assert (result.deleted, result.already_gone) == (1, 1)
    assert os.listdir(root / "cur") == []


def test_seen_follows_a_flag_change(root):
    write(root, "new", "1.M1P1Q1.h")
    drop = Maildrop.scan(root)
    [message] = drop.messages
    os.rename(root / "new" / message.name, root / "cur" / f"{message.base}:2,F")
    assert drop.commit([], [message]).seen_failed == []
    assert os.listdir(root / "cur") == [f"{message.base}:2,FS"]


@pytest.mark.parametrize(
    ("base", "sizes", "vouched"),
    [
        ("1.M1P2Q3.mx,S=120", (120, None), 120),  # our MDA: CRLF only
        ("1.M1P2.host,S=100,W=104", (100, 104), 104),  # Dovecot: W= is the CRLF size
        ("1.M1P2V3I4.host,S=100", (100, None), None),  # Courier: may hold bare LF
        ("1.M1P2X3.host,S=100", (100, None), None),  # an IMAP APPEND: the client's bytes
        ("1.M1P2Q3.host", (None, None), None),
        ("1.M1P2.host,S=x,W=", (None, None), None),
    ],
)
def test_sizes_a_name_vouches_for(base, sizes, vouched):
    assert name_sizes(base) == sizes
    assert crlf_size_from_name(base) == vouched
