"""The per-folder index: stable UIDs, flags mirrored in names, outside changes, rebuilds."""

from __future__ import annotations

import os

import pytest

from mailsuite.store.index import INDEX_FILE, FolderIndex


def _maildir(tmp_path):
    for sub in ("tmp", "new", "cur"):
        (tmp_path / sub).mkdir()
    return tmp_path


def _put(root, name, subject="s", sub="new"):
    data = f"From: a@b.c\r\nSubject: {subject}\r\n\r\nbody\r\n".encode()
    (root / sub / name).write_bytes(data)
    return data


def test_new_files_get_uids_and_survive_reopening(tmp_path):
    root = _maildir(tmp_path)
    _put(root, "100.A.host", "one")
    _put(root, "200.B.host", "two")
    index = FolderIndex(root)
    assert index.sync()
    uids = [r.uid for r in index.records()]
    assert uids == [1, 2]
    assert index.envelope(1)["subject"] == "one"
    validity = index.uidvalidity
    index.close()
    again = FolderIndex(root)
    again.sync()
    assert [r.uid for r in again.records()] == uids and again.uidvalidity == validity
    _put(root, "300.C.host", "three")
    again.sync()
    assert [r.uid for r in again.records()] == [1, 2, 3]


def test_flags_go_into_the_file_name_and_outside_renames_come_back(tmp_path):
    root = _maildir(tmp_path)
    _put(root, "100.A.host")
    index = FolderIndex(root)
    index.sync()
    changed, _ = index.store_flags([1], "+", ["\\Seen", "\\Flagged", "work"])
    assert changed[0].flags == {"\\Seen", "\\Flagged", "work"}
    assert os.listdir(root / "cur") == ["100.A.host:2,FS"]
    os.rename(root / "cur" / "100.A.host:2,FS", root / "cur" / "100.A.host:2,RS")
    index.sync(force=True)
    assert index.get(1).flags == {"\\Seen", "\\Answered", "work"}
    modseq = index.status().highestmodseq
    os.unlink(root / "cur" / "100.A.host:2,RS")
    index.sync(force=True)
    changed, expunged, highest = index.changes_since(modseq)
    assert expunged == [1] and highest > modseq and index.records() == []


def test_expunge_append_copy(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    src, dst = _maildir(tmp_path / "a"), _maildir(tmp_path / "b")
    _put(src, "1.x.host")
    _put(src, "2.x.host")
    a, b = FolderIndex(src), FolderIndex(dst)
    a.sync()
    a.store_flags([1], "+", ["\\Deleted"])
    assert a.expunge() == [1]
    pairs = a.copy_to(b, [2])
    assert pairs == [(2, 1)] and b.get(1).size == a.get(2).size
    source = tmp_path / "msg"
    source.write_bytes(b"Subject: appended\r\n\r\nx\r\n")
    record = b.add_file(source, ["\\Seen"], 1_000_000_000.0)
    assert record.uid == 2 and record.internaldate == 1_000_000_000.0
    assert b.envelope(2)["subject"] == "appended"


def test_lost_index_is_rebuilt_with_new_uidvalidity(tmp_path):
    root = _maildir(tmp_path)
    _put(root, "1.x.host")
    index = FolderIndex(root)
    index.sync()
    old = index.uidvalidity
    index.close()
    for name in os.listdir(root):
        if name.startswith(INDEX_FILE):
            os.unlink(root / name)
    rebuilt = FolderIndex(root)
    rebuilt.sync()
    assert rebuilt.uidvalidity > old and [r.uid for r in rebuilt.records()] == [1]


def test_damaged_index_is_replaced(tmp_path):
    root = _maildir(tmp_path)
    _put(root, "1.x.host")
    (root / INDEX_FILE).write_bytes(b"this is not sqlite" * 100)
    index = FolderIndex(root)
    index.sync()
    assert len(index.records()) == 1


@pytest.mark.parametrize("crlf", [True, False])
def test_structure_offsets_and_bare_lf_files(tmp_path, crlf):
    root = _maildir(tmp_path)
    text = (
        'Content-Type: multipart/alternative; boundary="b"\n\n'
        "--b\nContent-Type: text/plain\n\nplain\n"
        "--b\nContent-Type: text/html\n\n<p>html</p>\n--b--\n"
    )
    data = text.replace("\n", "\r\n").encode() if crlf else text.encode()
    (root / "new" / "1.x.host").write_bytes(data)
    index = FolderIndex(root)
    index.sync()
    record = index.get(1)
    assert record.size == len(text.replace("\n", "\r\n"))
    tree = index.structure(1)
    content = index.content(record)
    html = tree["parts"][1]
    assert bytes(content[html["bs"] : html["end"]]) == b"<p>html</p>"
