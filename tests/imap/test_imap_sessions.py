"""Two sessions on one folder see each other's changes (RFC 3501 §5.2, §7.4.1)."""

from __future__ import annotations

from imap_helpers import deliver, imap


def test_flag_changes_and_expunges_reach_the_other_session(suite):
    for i in range(3):
        deliver(suite, subject=f"m{i}")
    first, second = imap(suite), imap(suite)
    first.select("INBOX")
    second.select("INBOX")
    first.store("2", "+FLAGS", "(\\Flagged)")
    second.noop()
    fetches = second.untagged_responses.pop("FETCH", [])
    assert any(b"UID 2" in f and b"\\Flagged" in f for f in fetches), fetches
    first.store("1", "+FLAGS", "(\\Deleted)")
    first.expunge()
    # During a FETCH the expunge must not be announced; the next NOOP does.
    second.fetch("1:3", "(UID)")
    assert "EXPUNGE" not in second.untagged_responses
    second.noop()
    assert second.untagged_responses.pop("EXPUNGE") == [b"1"]
    typ, data = second.search(None, "ALL")
    assert data == [b"1 2"]
    deliver(suite, subject="late")
    second.noop()
    assert second.untagged_responses.pop("EXISTS")[-1] == b"3"
    first.logout()
    second.logout()


def test_pop3_style_changes_are_picked_up(suite):
    deliver(suite, subject="a")
    deliver(suite, subject="b")
    client = imap(suite)
    client.select("INBOX")
    new = suite.maildir("alice@example.com") / "new"
    cur = suite.maildir("alice@example.com") / "cur"
    names = sorted(p.name for p in new.iterdir())
    # POP3 marks the first one seen by renaming, and deletes the second.
    (new / names[0]).rename(cur / (names[0] + ":2,S"))
    (new / names[1]).unlink()
    client.noop()
    assert client.untagged_responses.pop("EXPUNGE") == [b"2"]
    fetches = client.untagged_responses.pop("FETCH", [])
    assert any(b"\\Seen" in f for f in fetches), fetches
    client.logout()


def test_session_far_behind_pruned_expunge_history_still_sees_every_expunge(suite, monkeypatch):
    from mailsuite.store.index import FolderIndex

    monkeypatch.setattr(FolderIndex, "expunged_kept", 2)
    for i in range(8):
        deliver(suite, subject=f"m{i}")
    behind, busy = imap(suite), imap(suite)
    behind.select("INBOX")
    busy.select("INBOX")
    for uid in (1, 3, 4, 6, 7, 8):  # six expunges at six MODSEQs: only two rows are kept
        busy.uid("STORE", str(uid), "+FLAGS", "(\\Deleted)")
        busy.expunge()
    behind.noop()
    assert len(behind.untagged_responses.pop("EXPUNGE")) == 6
    typ, data = behind.uid("SEARCH", None, "ALL")
    assert data == [b"2 5"]
    behind.logout()
    busy.logout()


def test_header_fields_are_shared_between_sessions_and_follow_new_mail(suite):
    """The per-folder memo of rendered HEADER.FIELDS: a second session gets the same bytes, a
    new message gets its own fields, and another field list or .NOT is computed on its own."""
    deliver(suite, subject="first one", extra="X-Tag: a\r\n")
    deliver(suite, subject="second one", extra="X-Tag: b\r\n")
    query = "(BODY.PEEK[HEADER.FIELDS (SUBJECT X-TAG)])"

    def fields(client, query=query, messages="1:*"):
        typ, data = client.fetch(messages, query)
        assert typ == "OK"
        return [part[1] for part in data if isinstance(part, tuple)]

    one = imap(suite)
    one.select("INBOX")
    first = fields(one)
    assert first == [
        b"Subject: first one\r\nX-Tag: a\r\n\r\n",
        b"Subject: second one\r\nX-Tag: b\r\n\r\n",
    ]
    two = imap(suite)
    two.select("INBOX")
    assert fields(two) == first  # from the folder's memo, byte for byte
    deliver(suite, subject="third one", extra="X-Tag: c\r\n")
    two.noop()
    assert fields(two)[2] == b"Subject: third one\r\nX-Tag: c\r\n\r\n"
    assert fields(two, "(BODY.PEEK[HEADER.FIELDS (X-TAG)])") == [
        b"X-Tag: a\r\n\r\n",
        b"X-Tag: b\r\n\r\n",
        b"X-Tag: c\r\n\r\n",
    ]
    not_fields = fields(two, "(BODY.PEEK[HEADER.FIELDS.NOT (SUBJECT X-TAG DATE TO)])", "1")
    assert b"Subject:" not in not_fields[0] and b"From: Bob <bob@example.net>" in not_fields[0]
    assert fields(one, "(BODY.PEEK[HEADER.FIELDS (SUBJECT)]<0.8>)", "2") == [b"Subject:"]
    for client in (one, two):
        client.logout()


def test_header_fields_keep_folded_lines_and_match_whole_names_in_any_case(suite):
    """HEADER.FIELDS picks fields by whole name, case-insensitively, with their folded
    continuation lines and in the message's order (RFC 3501 §6.4.5)."""
    extra = (
        "X-Long: first part\r\n\tsecond part\r\n  third part\r\n"
        "X-Longer: not asked for\r\n"
        "x-long : spaced name\r\n"
        "Received: from a\r\n\tby b\r\n"
    )
    deliver(suite, subject="folded", extra=extra)
    client = imap(suite)
    client.select("INBOX")

    def fields(names: str) -> bytes:
        typ, data = client.fetch("1", f"(BODY.PEEK[HEADER.FIELDS ({names})])")
        assert typ == "OK"
        return data[0][1]

    assert fields("x-LONG") == (
        b"X-Long: first part\r\n\tsecond part\r\n  third part\r\nx-long : spaced name\r\n\r\n"
    )
    assert fields("X-LONGER SUBJECT") == b"Subject: folded\r\nX-Longer: not asked for\r\n\r\n"
    assert fields("X-Missing") == b"\r\n"
    received = fields("received x-lon")  # our own Received: comes first
    assert received.startswith(b"Received: from ") and b"X-Lon" not in received
    assert received.endswith(b"\r\nReceived: from a\r\n\tby b\r\n\r\n")
    client.logout()


def test_fetch_from_the_index_and_a_header_too_big_to_cache_answer_alike(suite):
    """A header block over the index's cache limit is read from its file: the same FETCH
    answers it and a small one alike, \\Recent included for the session that first saw them."""
    deliver(suite, subject="small")
    client = imap(suite)
    padding = "".join(f"X-Pad-{n}: {'p' * 70}\r\n" for n in range(1000))  # ~80 KB of header
    big = f"From: a@b.example\r\nSubject: big\r\n{padding}\r\nbody\r\n".encode()
    assert client.append("INBOX", None, None, big)[0] == "OK"
    client.select("INBOX")
    typ, data = client.uid("FETCH", "1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert typ == "OK"
    answers = [(head, body) for head, body in (p for p in data if isinstance(p, tuple))]
    assert [body for _head, body in answers] == [b"Subject: small\r\n\r\n", b"Subject: big\r\n\r\n"]
    for head, _body in answers:
        assert b"\\Recent" in head and b"UID " in head
    client.logout()


def test_store_answer_carries_another_sessions_change_but_not_its_own_twice(suite):
    """A STORE whose session is behind (another session changed flags) ends with that change;
    a STORE by an up-to-date session answers its own change once, and the next command brings
    nothing more."""
    deliver(suite, subject="one")
    deliver(suite, subject="two")
    first = imap(suite)
    first.select("INBOX")
    other = imap(suite)
    other.select("INBOX")
    assert other.store("1", "+FLAGS", "(\\Flagged)")[0] == "OK"
    first.untagged_responses.clear()
    typ, data = first.store("2", "+FLAGS", "(\\Seen)")
    assert typ == "OK"
    fetches = [d for d in data if d] + first.untagged_responses.pop("FETCH", [])
    assert any(f.startswith(b"1 (") and b"\\Flagged" in f for f in fetches), fetches
    assert sum(1 for f in fetches if f.startswith(b"2 (") and b"\\Seen" in f) == 1, fetches
    typ, data = first.store("1", "+FLAGS.SILENT", "(\\Seen)")
    assert typ == "OK"
    first.untagged_responses.clear()
    assert first.noop()[0] == "OK"
    assert "FETCH" not in first.untagged_responses  # its own silent change is not echoed
    other.noop()
    assert any(f.startswith(b"1 (") and b"\\Seen" in f for f in other.untagged_responses["FETCH"])
    first.logout()
    other.logout()
