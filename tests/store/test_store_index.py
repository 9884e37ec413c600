"""The per-folder index: stable UIDs, flags mirrored in names, outside changes, rebuilds."""

from __future__ import annotations

import os

import pytest
from conftest import index_on_disk

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
    index.fill_sizes([1])
    record = index.get(1)
    assert record.size == len(text.replace("\n", "\r\n"))
    tree = index.structure(1)
    content = index.content(record)
    html = tree["parts"][1]
    assert bytes(content[html["bs"] : html["end"]]) == b"<p>html</p>"


def test_expunged_history_is_pruned_and_older_questions_still_get_exact_answers(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(FolderIndex, "expunged_kept", 4)
    root = _maildir(tmp_path)
    for n in range(12):
        _put(root, f"{n}.x.host")
    index = FolderIndex(root)
    index.sync()
    start = index.status().highestmodseq
    for uid in range(1, 11):  # ten expunges, each at its own MODSEQ
        index.expunge([uid], only_deleted=False)
    rows = index._db.execute("SELECT count(*) FROM expunged").fetchone()[0]
    assert rows <= 4
    floor = index.expunged_floor
    assert start < floor < index.status().highestmodseq
    # Recent history is still answered from the table...
    _, expunged, _ = index.changes_since(floor)
    assert expunged and expunged == list(range(11 - len(expunged), 11))
    # ...older questions from the caller's UIDs: exactly those that are gone.
    _, expunged, _ = index.changes_since(start, known=[2, 5, 11, 12])
    assert expunged == [2, 5]
    # The floor survives reopening.
    index.close()
    assert FolderIndex(root).expunged_floor == floor


def test_vanished_since_from_history_and_after_pruning(tmp_path, monkeypatch):
    from mailsuite.store.index import merge_ranges

    assert merge_ranges([(5, 3), (1, 1), (2, 2), (9, 12), (11, 20)]) == [(1, 5), (9, 20)]
    root = _maildir(tmp_path)
    for n in range(10):
        _put(root, f"{n}.v.host")
    index = FolderIndex(root)
    index.sync()
    start = index.status().highestmodseq
    index.expunge([2, 3, 7], only_deleted=False)
    middle = index.status().highestmodseq
    index.expunge([9], only_deleted=False)
    assert index.vanished_since(start, [(1, 100)]) == [(2, 3), (7, 7), (9, 9)]
    assert index.vanished_since(middle, [(1, 100)]) == [(9, 9)]
    assert index.vanished_since(start, [(3, 8), (1, 2)]) == [(2, 3), (7, 7)]
    # Pruned: every UID below UIDNEXT in the asked ranges that no longer exists.
    monkeypatch.setattr(FolderIndex, "expunged_kept", 0)
    index.expunge([10], only_deleted=False)
    assert index.expunged_floor == index.status().highestmodseq
    assert index.vanished_since(start, [(1, 4_000_000_000)]) == [(2, 3), (7, 7), (9, 10)]
    assert index.vanished_since(start, [(3, 3), (8, 9)]) == [(3, 3), (9, 9)]
    assert index.vanished_since(index.expunged_floor, [(1, 100)]) == []


def test_version_1_index_gains_the_envelope_bytes_column_and_keeps_its_uids(tmp_path):
    import json
    import sqlite3

    from mailsuite.store import mime

    root = _maildir(tmp_path)
    _put(root, "100.A.host", "one")
    _put(root, "200.B.host", 'two "quoted"')
    index = FolderIndex(root)
    index.sync()
    validity = index.uidvalidity
    index.close()
    # What a version-1 index looks like: no envwire column, every envelope parsed as JSON.
    db = sqlite3.connect(root / INDEX_FILE)
    db.execute("DROP TABLE cache")
    for uid, name in list(db.execute("SELECT uid, name FROM messages")):
        header = (root / name).read_bytes().split(b"\r\n\r\n")[0] + b"\r\n\r\n"
        envelope = json.dumps(mime.envelope(mime.parse_header_fields(header)))
        db.execute(
            "UPDATE messages SET envelope = ?, header = ? WHERE uid = ?", (envelope, header, uid)
        )
    db.execute("ALTER TABLE messages DROP COLUMN envwire")
    db.execute("UPDATE meta SET value = 1 WHERE key = 'version'")
    db.execute("PRAGMA user_version = 0")  # as on every index before schema.py
    db.commit()
    db.close()
    again = FolderIndex(root)
    again.sync()
    assert again.uidvalidity == validity and [r.uid for r in again.records()] == [1, 2]
    wire = again.envelopes_wire([1, 2])
    assert wire == {uid: mime.envelope_imap(again.envelope(uid)) for uid in (1, 2)}
    assert b'"two \\"quoted\\""' in wire[2]
    again.close()
    third = FolderIndex(root)  # filled in lazily and stored: served from the column now
    row = third._db.execute("SELECT envwire FROM cache WHERE uid = 2").fetchone()
    assert row[0] == wire[2]
    moved = third._db.execute("SELECT count(*) FROM messages WHERE header IS NOT NULL")
    assert moved.fetchone() == (0,)  # version 3: parsed columns live in the cache table
    assert third.headers([1, 2]) == {uid: third.header(uid) for uid in (1, 2)}


def test_uid_array_is_shared_until_the_set_of_uids_changes(tmp_path):
    root = _maildir(tmp_path)
    _put(root, "100.A.host")
    _put(root, "200.B.host")
    index = FolderIndex(root)
    index.sync()
    first = index.uid_array()
    assert list(first) == [1, 2] and index.uid_array() is first
    index.store_flags([1], "+", ["\\Seen"])  # flags only: same UIDs, same array
    assert index.uid_array() is first
    index.expunge([1], only_deleted=False)
    assert list(index.uid_array()) == [2] and list(first) == [1, 2]


def test_store_on_many_messages_renames_each_once_and_persists(tmp_path):
    root = _maildir(tmp_path)
    for i in range(50):
        _put(root, f"{100 + i}.X{i}.host", sub="cur" if i % 2 else "new")
    index = FolderIndex(root)
    index.sync()
    changed, refused = index.store_flags(range(1, 51), "+", ["\\Seen", "$Label"])
    assert len(changed) == 50 and not refused
    assert len({r.modseq for r in changed}) == 1
    names = sorted(os.listdir(root / "cur"))
    assert len(names) == 50 and all(n.endswith(":2,S") for n in names)
    index.close()
    again = FolderIndex(root)
    again.sync()
    assert all(r.flags == {"\\Seen", "$Label"} for r in again.records())


# --- first contact: indexed from names and stats, headers parsed on first need ---------------

HEADER = (
    b'From: "Doe, Jane" <jane@example.org>\r\nTo: Bob <bob@example.com>, carol@example.net\r\n'
    b"Subject: lazy one\r\nMessage-ID: <1@x>\r\nContent-Type: text/plain\r\n\r\n"
)


def _lazy_folder(root):
    """One message of each kind the index meets: (base name, data, CRLF size)."""
    crlf = HEADER + b"body\r\n"
    bare = HEADER.replace(b"\r\n", b"\n") + b"line\nline\n"
    bare_crlf = len(bare) + bare.count(b"\n")
    kinds = [
        (f"1000.M1P7Q1.host,S={len(crlf)}", crlf),  # our MDA: CRLF, S= is the CRLF size
        (f"1001.M2P7.host,S={len(bare)},W={bare_crlf}", bare),  # Dovecot's names
        ("1002.M3P7V1I2.host", bare),  # someone else's, no size in the name, bare LF
        (f"1003.M4P7V1I3.host,S={len(bare)}", bare),  # S= on disk, bare LF (Courier)
        ("1004.M5P7.host", crlf),
    ]
    for base, data in kinds:
        (root / "cur" / f"{base}:2,S").write_bytes(data)
    return [
        (base, data, len(data) + data.count(b"\n") - data.count(b"\r\n")) for base, data in kinds
    ]


def _unparsed(index):
    rows = index._db.execute(
        "SELECT uid FROM messages WHERE uid NOT IN (SELECT uid FROM cache"
        " WHERE header IS NOT NULL OR envelope IS NOT NULL OR envwire IS NOT NULL)"
    )
    return sorted(uid for (uid,) in rows)


def test_cold_sync_reads_names_not_files_and_sizes_are_crlf_sizes(tmp_path):
    root = _maildir(tmp_path)
    kinds = _lazy_folder(root)
    index = FolderIndex(root)
    index.sync()
    # Bare-LF files whose names do not say their CRLF size are measured on first need only.
    measured = {r.key: r.size for r in index.records()}
    assert [measured[base] for base, _d, _s in kinds] == [
        kinds[0][2], kinds[1][2], None, None, kinds[4][2]
    ]
    index.fill_sizes([r.uid for r in index.records()])
    records = {r.key: r for r in index.records()}
    for base, data, crlf_size in kinds:
        record = records[base]
        assert record.size == crlf_size, base
        assert record.crlf == (b"\n" not in data.replace(b"\r\n", b"")), base
        content = index.content(record)
        assert len(content) == crlf_size and bytes(content[:6]) == b"From: "
        if hasattr(content, "close"):
            content.close()
        assert record.flags == {"\\Seen"}
    assert _unparsed(index) == [1, 2, 3, 4, 5]  # nothing parsed yet


def test_parsed_columns_are_filled_on_first_need_and_kept(tmp_path):
    from mailsuite.store import mime

    root = _maildir(tmp_path)
    _lazy_folder(root)
    index = FolderIndex(root)
    index.sync()
    expected = mime.envelope_imap(mime.envelope(mime.parse_header_fields(HEADER)))
    assert index.envelopes_wire([1, 2, 3]) == {uid: expected for uid in (1, 2, 3)}
    assert _unparsed(index) == [4, 5]
    assert index.headers([4, 5]) == {4: HEADER, 5: HEADER}  # a header section parses too
    assert _unparsed(index) == []
    assert index.envelope(2)["from"] == [["Doe, Jane", None, "jane", "example.org"]]
    index.close()
    again = FolderIndex(root)  # from the index now: the files are no longer needed
    for name in os.listdir(root / "cur"):
        os.rename(root / "cur" / name, root / "tmp" / name)
    assert again.envelopes_wire([1, 2, 3, 4, 5]) == {uid: expected for uid in range(1, 6)}
    assert again.headers([1, 2, 3, 4, 5]) == {uid: HEADER for uid in range(1, 6)}


def test_single_message_readers_parse_too(tmp_path):
    root = _maildir(tmp_path)
    _lazy_folder(root)
    index = FolderIndex(root)
    index.sync()
    assert index.header(3) == HEADER and _unparsed(index) == [1, 2, 4, 5]
    assert index.envelope(4)["subject"] == "lazy one"
    assert index.envelopes([1, 5])[5]["to"][1] == [None, None, "carol", "example.net"]
    assert index.structure(1)["subtype"] == "plain"


def test_messages_indexed_by_an_older_version_and_new_lazy_ones_live_together(tmp_path):
    import json

    from mailsuite.store import mime

    root = _maildir(tmp_path)
    _put(root, "100.A.host", "old one")
    index = FolderIndex(root)
    index.sync()
    index.close()
    # What version 2 wrote for every message: header, JSON envelope and wire bytes.
    import sqlite3

    db = sqlite3.connect(root / INDEX_FILE)
    db.execute("DROP TABLE cache")
    db.execute("UPDATE meta SET value = 2 WHERE key = 'version'")
    db.execute("PRAGMA user_version = 0")  # as on every index before schema.py
    header = b"From: a@b.c\r\nSubject: old one\r\n\r\n"
    envelope = mime.envelope(mime.parse_header_fields(header))
    db.execute(
        "UPDATE messages SET header = ?, envelope = ?, envwire = ? WHERE uid = 1",
        (header, json.dumps(envelope), mime.envelope_imap(envelope)),
    )
    db.commit()
    db.close()
    _put(root, "200.B.host", "new one")
    again = FolderIndex(root)
    again.sync()
    assert [r.uid for r in again.records()] == [1, 2]
    assert _unparsed(again) == [2]
    wire = again.envelopes_wire([1, 2])
    assert b'"old one"' in wire[1] and b'"new one"' in wire[2]
    assert again.envelope(1) == envelope


def test_cold_scan_of_vouching_names_skips_stat_yet_reports_size_and_date(tmp_path):
    from mailsuite.store.index import FolderIndex as _Index

    for sub in ("tmp", "new", "cur"):
        (tmp_path / sub).mkdir()
    lf = b"Subject: lf\n\nbody\n"
    crlf_size = len(lf) + lf.count(b"\n")
    names = {
        f"1600000000.M1P2.host,S={len(lf)},W={crlf_size}:2,S": (lf, crlf_size, False),
        "1600000001.M5P9Q3.host,S=18:2,": (b"Subject: q\r\n\r\nx\r\n", 18, True),
        "1600000002.plain.host:2,F": (b"Subject: p\n\nx\n", 17, False),
    }
    for i, (name, (data, _size, _crlf)) in enumerate(names.items()):
        (tmp_path / "cur" / name).write_bytes(data)
        os.utime(tmp_path / "cur" / name, (1_000_000 + i, 1_000_000 + i))  # not the name's time
    index = _Index(tmp_path)
    index.sync()
    assert index.records()[2].size is None  # bare LF, no size in its name: counted when asked
    index.fill_sizes([r.uid for r in index.records()])
    records = index.records()
    assert [(r.size, r.crlf) for r in records] == [(s, c) for _d, s, c in names.values()]
    assert records[0].internaldate is None  # not stat'ed: read on first need
    index.fill_internaldates([r.uid for r in records])
    assert [index.get(r.uid).internaldate for r in records] == [1_000_000, 1_000_001, 1_000_002]
    index.close()
    reopened = _Index(tmp_path)
    assert [r.internaldate for r in reopened.records()] == [1_000_000, 1_000_001, 1_000_002]
    reopened.close()


def test_memos_are_kept_per_kind_and_the_oldest_kind_goes(tmp_path):
    from mailsuite.store.index import MEMO_KINDS

    root = _maildir(tmp_path)
    _put(root, "1.M1P1Q1.host")
    index = FolderIndex(root)
    index.sync()
    memo = index.memo(("fields", "HEADER.FIELDS", ("subject",)))
    memo[1] = b"Subject: s\r\n\r\n"
    assert index.memo(("fields", "HEADER.FIELDS", ("subject",))) is memo
    for n in range(MEMO_KINDS):  # more kinds than are kept: the oldest goes
        index.memo(("other", n))
    assert index.memo(("fields", "HEADER.FIELDS", ("subject",))) == {}
    index.close()


def test_first_index_is_written_by_settle_in_one_piece(tmp_path):
    root = _maildir(tmp_path)
    _put(root, "100.A.host")
    _put(root, "200.B.host:2,S", sub="cur")
    index = FolderIndex(root)
    index.sync()
    assert index.claim_recent() == range(1, 3)
    assert index_on_disk(root) == ({}, [])  # a cold SELECT does not wait for SQLite
    index.settle()
    meta, rows = index_on_disk(root)
    assert rows == [(1, "100.A.host", ""), (2, "200.B.host", "\\Seen")]
    assert meta["uidvalidity"] == index.uidvalidity
    assert (meta["uidnext"], meta["recent_uid"]) == (3, 2)
    again = FolderIndex(root)
    again.sync()
    assert [(r.uid, r.key) for r in again.records()] == [(1, "100.A.host"), (2, "200.B.host")]
    assert again.uidvalidity == index.uidvalidity and again.claim_recent() == range(3, 3)


def test_a_first_index_lost_before_settle_comes_back_with_a_larger_uidvalidity(tmp_path):
    root = _maildir(tmp_path)
    _put(root, "100.A.host")
    lost = FolderIndex(root)  # never settled nor closed: the process died
    lost.sync()
    again = FolderIndex(root)
    again.sync()
    assert again.uidvalidity > lost.uidvalidity
    assert [r.key for r in again.records()] == ["100.A.host"]


@pytest.mark.parametrize("change", ["store", "expunge", "outside-unlink"])
def test_changes_before_settle_write_the_first_index_first(tmp_path, change):
    root = _maildir(tmp_path)
    _put(root, "100.A.host")
    _put(root, "200.B.host")
    index = FolderIndex(root)
    index.sync()
    _put(root, "300.C.host")  # found by the sync the change makes, still unwritten then
    if change == "store":
        index.store_flags([1, 2], "+", ["\\Seen", "work"])
        want = [(1, "\\Seen work"), (2, "\\Seen work"), (3, "")]
    elif change == "expunge":
        index.store_flags([2], "+", ["\\Deleted"])
        assert index.expunge() == [2]
        want = [(1, ""), (3, "")]
    else:
        os.unlink(root / "new" / "100.A.host")
        assert index.sync(force=True)
        want = [(2, ""), (3, "")]
    _meta, rows = index_on_disk(root)
    assert [(uid, flags) for uid, _key, flags in rows] == want
    again = FolderIndex(root)
    again.sync()
    assert [(r.uid, " ".join(sorted(r.flags))) for r in again.records()] == want
    if change != "store":
        _, expunged, _ = again.changes_since(1)
        assert expunged == ([2] if change == "expunge" else [1])


def test_registry_keeps_recent_and_used_indexes_only_and_never_two_for_one_folder(tmp_path):
    import gc

    from mailsuite.store.index import IndexRegistry

    roots = []
    for name in ("a", "b", "c"):
        root = tmp_path / name
        root.mkdir()
        _maildir(root)
        _put(root, f"100.{name}.host")
        roots.append(root)
    registry = IndexRegistry(keep=2)
    first = registry.open(roots[0])
    first.sync()
    validity = first.uidvalidity
    for root in roots[1:]:
        registry.open(root).sync()
    # "a" fell out of the recent two: its first index was written on the way out...
    meta, rows = index_on_disk(roots[0])
    assert meta["uidvalidity"] == validity and [r[1] for r in rows] == ["100.a.host"]
    # ...but a user still holds it, so opening it again gives that same instance.
    assert registry.open(roots[0]) is first
    del first
    registry.open(roots[1])
    registry.open(roots[2])  # "a" is neither recent nor used now
    gc.collect()
    assert registry.open_count() == 2
    again = registry.open(roots[0])
    again.sync()
    assert again.uidvalidity == validity and [r.uid for r in again.records()] == [1]


def test_sparse_requests_parse_what_was_asked_even_when_a_neighbour_is_cached(tmp_path):
    """Cached values are read by UID range: a parsed message between the asked ones must not
    stand in for an asked one that was never parsed."""
    for reader in ("envelopes_wire", "headers"):
        root = tmp_path / reader
        root.mkdir()
        _maildir(root)
        for n, name in enumerate(("100.A.host", "200.B.host", "300.C.host"), 1):
            _put(root, name, f"subject {n}")
        index = FolderIndex(root)
        index.sync()
        read = getattr(index, reader)
        assert sorted(read([2, 3])) == [2, 3]  # 1 is never parsed
        answer = read([1, 3])  # one range query returns 2 and 3: as many as were asked
        assert {1, 3} <= set(answer), reader
        assert b"subject 1" in answer[1]


def test_sizes_counted_on_first_need_are_kept_across_a_restart(tmp_path):
    root = _maildir(tmp_path)
    kinds = _lazy_folder(root)
    index = FolderIndex(root)
    index.sync()
    index.settle()
    unmeasured = [r.uid for r in index.records() if r.size is None]
    assert unmeasured == [3, 4]
    index.close()
    again = FolderIndex(root)
    assert [r.size for r in again.records() if r.uid in unmeasured] == [None, None]
    again.fill_sizes(unmeasured)
    again.close()
    third = FolderIndex(root)
    assert [r.size for r in third.records()] == [size for _b, _d, size in kinds]
    third.close()


def test_to_crlf_makes_every_bare_lf_crlf_and_keeps_the_rest():
    import random
    import re

    from mailsuite.store.index import to_crlf

    reference = re.compile(rb"(?<!\r)\n")
    rnd = random.Random(3)
    for _ in range(2000):
        data = bytes(rnd.choice(b"\r\nab") for _ in range(rnd.randint(0, 40)))
        assert to_crlf(data) == reference.sub(b"\r\n", data), data
