"""SEARCH keys and CONDSTORE, through imaplib."""

from __future__ import annotations

from imap_helpers import deliver, imap


def _setup(suite):
    deliver(suite, subject="Quarterly report", sender="carol@example.org", body="numbers\r\n")
    deliver(
        suite,
        subject="=?utf-8?q?Gr=C3=BC=C3=9Fe?=",
        sender="dave@example.org",
        body="Bonjour tout le monde\r\n",
        extra="X-Tag: blue\r\n",
    )
    deliver(suite, subject="lunch", sender="carol@example.org", body="pizza?\r\n")
    client = imap(suite)
    client.select("INBOX")
    return client


def search(client, *criteria, uid=False):
    if uid:
        typ, data = client.uid("SEARCH", *criteria)
    else:
        typ, data = client.search(None, *criteria)
    assert typ == "OK"
    return data[0].decode().split()


def test_search_keys(suite):
    client = _setup(suite)
    assert search(client, "FROM", "carol") == ["1", "3"]
    assert search(client, "SUBJECT", "report") == ["1"]
    assert search(client, "CHARSET", "UTF-8", "SUBJECT", "Gr\u00fc\u00dfe".encode()) == ["2"]
    assert search(client, "HEADER", "X-Tag", "blue") == ["2"]
    assert search(client, "TEXT", "pizza") == ["3"]
    assert search(client, "BODY", "bonjour") == ["2"]
    assert search(client, "SINCE", "1-Jan-2020") == ["1", "2", "3"]
    assert search(client, "BEFORE", "1-Jan-2020") == []
    assert search(client, "SENTON", "7-Feb-2022") == ["1", "2", "3"]
    assert search(client, "UNSEEN") == ["1", "2", "3"]
    client.store("2", "+FLAGS", "(\\Seen)")
    assert search(client, "UNSEEN") == ["1", "3"]
    assert search(client, "OR", "SEEN", "SUBJECT", "lunch") == ["2", "3"]
    assert search(client, "NOT", "FROM", "carol") == ["2"]
    assert search(client, "UID", "2:*", uid=True) == ["2", "3"]
    assert search(client, "2:3", "FROM", "carol") == ["3"]
    assert search(client, "LARGER", "1") == ["1", "2", "3"]
    typ, data = client.search("KOI8-R", "ALL")
    assert typ == "NO" and b"BADCHARSET" in data[0]
    client.logout()


def test_condstore_changedsince_and_unchangedsince(suite):
    client = _setup(suite)
    typ, data = client.status("INBOX", "(HIGHESTMODSEQ)")
    highest = int(data[0].split(b"HIGHESTMODSEQ ")[1].rstrip(b")"))
    client.store("3", "+FLAGS", "(\\Flagged)")
    typ, data = client.fetch("1:*", f"(FLAGS) (CHANGEDSINCE {highest})")
    assert len(data) == 1 and data[0].startswith(b"3 (") and b"MODSEQ" in data[0]
    typ, data = client.uid("STORE", "1", f"(UNCHANGEDSINCE {highest}) +FLAGS (\\Answered)")
    assert typ == "OK"
    typ, data = client._simple_command(
        "UID", "STORE", "3", f"(UNCHANGEDSINCE {highest})", "+FLAGS", "(\\Answered)"
    )
    assert typ == "OK" and b"MODIFIED 3" in data[-1], data
    assert search(client, "MODSEQ", str(highest + 1))[:2] == ["1", "3"]
    client.logout()


def test_header_search_shortcut_agrees_with_the_exact_match(tmp_path):
    """The joined-buffer pre-check may only skip messages the exact comparison rejects."""
    from mailsuite.imap import search as search_module
    from mailsuite.imap.parser import Reader
    from mailsuite.store import mime
    from mailsuite.store.index import FolderIndex

    for sub in ("tmp", "new", "cur"):
        (tmp_path / sub).mkdir()
    subjects = [
        b"Quarterly Report",
        b"Quarterly\r\n  report folded",
        b"=?utf-8?q?Gr=C3=BC=C3=9Fe?= aus Berlin",
        "Caf\u00e9 raw 8-bit".encode(),
        b"caf\xe9 latin-1",
        b"tabs\tand  spaces",
        b"re: REPORT",
    ]
    for i, subject in enumerate(subjects):
        data = b"From: a@b.c\r\nSubject: " + subject + b"\r\nX-Tag: blue\r\n\r\nbody\r\n"
        (tmp_path / "new" / f"{100 + i}.M{i}.host").write_bytes(data)
    index = FolderIndex(tmp_path)
    index.sync()
    uids = list(index.uid_array())
    needles = [
        "report",
        "quarterly report",
        "gr\u00fc\u00dfe",
        "caf\u00e9",
        "and  spaces",
        "BLUE",
        "nothing",
        "re:",
        "y r",
        "\u00dfe aus",
    ]
    for needle in needles:
        keys, _ = search_module.parse_search(
            Reader([b"SUBJECT {%d}" % len(needle.encode()), b""], [_literal(needle.encode())])
        )
        found = [r.uid for _msn, r in search_module.Matcher(index, uids, set()).search(keys)]
        folded = needle.casefold()
        expected = [
            uid
            for uid in uids
            if any(
                folded in search_module._decoded(value)
                for name, value in mime.parse_header_fields(index.header(uid))
                if name == "subject"
            )
        ]
        assert found == expected, needle
    index.close()


def _literal(data: bytes):
    from mailsuite.imap.parser import Literal

    return Literal(len(data), data=data)


def test_a_folder_indexed_from_file_names_answers_from_parsed_headers(suite):
    """Messages put into the Maildir by others are indexed on SELECT from their names only;
    the first FETCH / SEARCH that needs their headers parses them, and keeps what it parsed."""
    root = suite.service.store.ensure_maildir("alice@example.com")
    header = (
        'From: "Doe, Jane" <jane@example.org>\r\nTo: alice@example.com\r\n'
        "Subject: {subject}\r\nMessage-ID: <{n}@x>\r\n"
        'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
    )
    body = "--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b--\r\n"
    files = {}
    for n, subject in enumerate(["alpha", "bravo", "charlie"], 1):
        data = (header.format(subject=subject, n=n) + body).encode()
        if n == 2:  # Dovecot's names: bare LF on disk, W= the CRLF size
            data = data.replace(b"\r\n", b"\n")
            wire_size = len(data) + data.count(b"\n")
            name = f"170000000{n}.M{n}P9.else,S={len(data)},W={wire_size}"
        elif n == 3:  # no size in the name
            data = data.replace(b"\r\n", b"\n")
            name = f"170000000{n}.M{n}P9V1I{n}.else"
        else:
            name = f"170000000{n}.M{n}P9Q{n}.mx,S={len(data)}"  # our MDA's
        (root / "cur" / f"{name}:2,S").write_bytes(data)
        files[n] = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    client = imap(suite)
    client.select("INBOX")
    assert search(client, "SUBJECT", "bravo") == ["2"]
    typ, data = client.fetch("1:3", "(RFC822.SIZE ENVELOPE BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert typ == "OK"
    text = b"".join(part if isinstance(part, bytes) else b"".join(part) for part in data)
    for n, subject in enumerate([b"alpha", b"bravo", b"charlie"], 1):
        assert b"RFC822.SIZE %d " % len(files[n]) in text
        assert b'"%s" (("Doe, Jane" NIL "jane" "example.org"))' % subject in text
        assert b"Subject: %s\r\n\r\n" % subject in text
    typ, data = client.fetch("3", "(BODYSTRUCTURE BODY.PEEK[])")
    assert b'(("TEXT" "PLAIN" ("charset" "us-ascii") NIL NIL "7BIT" 5 1 ' in data[0][0]
    assert data[0][1] == files[3]
    client.logout()
