"""Defects an independent RFC 3501 compliance run found, each pinned by the dialog that showed it:
connection slots lost by clients that leave during LOGIN, FETCH of a message another session
expunged, new keywords without a FLAGS response, \\Recent seen twice, UIDVALIDITY reused by a
folder re-created within one second, LOGOUT over TLS waiting for the client, LSUB without the
\\Noselect parent, ENVELOPE groups and source routes, SEARCH FROM over comments."""

from __future__ import annotations

import os
import re
import socket
import threading
import time

import pytest
from conftest import PASSWORD
from imap_helpers import Raw, deliver, imap, imaps

LOGIN = b"l LOGIN alice@example.com " + f'"{PASSWORD}"'.encode()


def _open_sessions(suite) -> int:
    return suite.reactor.call(lambda: suite.service.imap_context.connections.get(
        "alice@example.com", 0))


def _wait_for(condition, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


# --- 1. per-user connection slots ------------------------------------------------------------


def _login_and_leave(suite) -> None:
    """Send LOGIN and close at once, before the answer: the server finishes the login after
    the connection is gone."""
    raw = Raw(suite, login=False)
    raw.send(LOGIN + b"\r\n")
    raw.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    raw.close()


def test_clients_that_leave_during_login_give_their_slot_back(make_suite):
    suite = make_suite({"imap.max_connections_per_user": 3})
    suite.add_user("alice@example.com")
    for _ in range(10):
        _login_and_leave(suite)
    # Each abandoned login ends (password check, default folders) after its client left; a
    # slot it kept would show up in the count meanwhile.
    assert not _wait_for(lambda: _open_sessions(suite) > 0, 2), _open_sessions(suite)
    clients = [imaps(suite) for _ in range(3)]  # every slot is free again
    assert _open_sessions(suite) == 3
    for client in clients:
        client.logout()
    assert _wait_for(lambda: _open_sessions(suite) == 0)


def test_concurrent_logins_are_all_counted(make_suite):
    """Logins that overlap (each waits for its password check) each take a slot: the limit
    holds even when they finish together."""
    suite = make_suite({"imap.max_connections_per_user": 4})
    suite.add_user("alice@example.com")
    results: list[bytes] = []
    sessions: list[Raw] = []  # kept open until the count is checked
    lock = threading.Lock()

    def login():
        raw = Raw(suite, login=False)
        answer = raw.command(LOGIN)[-1]
        with lock:
            results.append(answer)
            sessions.append(raw)

    threads = [threading.Thread(target=login) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    ok = [r for r in results if r.startswith(b"l OK")]
    refused = [r for r in results if b"[LIMIT]" in r]
    assert len(ok) == 4 and len(refused) == 4, results
    assert _open_sessions(suite) == 4
    for raw in sessions:
        raw.close()
    assert _wait_for(lambda: _open_sessions(suite) == 0)


# --- 2. FETCH of a message another session expunged ------------------------------------------


FETCH_ALL = (
    "(UID FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODYSTRUCTURE BODY.PEEK[HEADER]"
    " BODY.PEEK[HEADER.FIELDS (SUBJECT)] BODY.PEEK[TEXT] BODY.PEEK[])"
)


@pytest.mark.parametrize("items", [FETCH_ALL, "(FLAGS)", "(BODY[])", "(ENVELOPE)"])
def test_fetch_of_a_message_expunged_by_another_session(suite, items):
    for i in range(3):
        deliver(suite, subject=f"m{i}")
    reader, other = imap(suite), imap(suite)
    reader.select("INBOX")
    other.select("INBOX")
    other.store("2", "+FLAGS", "(\\Deleted)")
    other.expunge()
    typ, data = reader.fetch("1:3", items)
    assert typ == "OK", data
    text = b"".join(d if isinstance(d, bytes) else d[0] + d[1] for d in data)
    assert b"SERVERBUG" not in text
    assert re.search(rb"(^|\s)1 \(", text) and b"3 (" in text
    # The expunge is announced afterwards, never during the FETCH.
    assert "EXPUNGE" not in reader.untagged_responses
    reader.noop()
    assert reader.untagged_responses.pop("EXPUNGE") == [b"2"]
    reader.logout()
    other.logout()


def test_uid_fetch_and_store_of_an_expunged_message(suite):
    for i in range(2):
        deliver(suite, subject=f"m{i}")
    reader, other = imap(suite), imap(suite)
    reader.select("INBOX")
    other.select("INBOX")
    other.uid("STORE", "1", "+FLAGS", "(\\Deleted)")
    other.expunge()
    typ, data = reader.uid("FETCH", "1:2", "(BODY[] FLAGS)")
    assert typ == "OK", data
    typ, data = reader.uid("STORE", "1:2", "+FLAGS", "(\\Flagged)")
    assert typ == "OK", data
    typ, data = reader.fetch("1", "(BODY.PEEK[HEADER])")  # still message 1 of this view
    assert typ == "OK", data
    reader.logout()
    other.logout()


# --- 3. keywords announced with FLAGS before they are used -----------------------------------


def _flags_response(client) -> bytes:
    return client.untagged_responses.get("FLAGS", [b""])[-1]


def test_store_of_a_new_keyword_sends_flags_and_permanentflags_first(suite):
    deliver(suite)
    raw = Raw(suite)
    select = b"".join(raw.command(b"s SELECT INBOX"))
    assert b"$hello" not in select
    lines = raw.command(b"t STORE 1 +FLAGS ($hello $Label1)")
    flags_at = next(i for i, line in enumerate(lines) if line.startswith(b"* FLAGS"))
    perm_at = next(i for i, line in enumerate(lines) if b"[PERMANENTFLAGS" in line)
    fetch_at = next(i for i, line in enumerate(lines) if b"FETCH" in line)
    assert flags_at < fetch_at and perm_at < fetch_at, lines
    assert b"$hello" in lines[flags_at] and b"$Label1" in lines[flags_at]
    assert b"$hello" in lines[perm_at] and b"\\*" in lines[perm_at]
    # Said once: the same keyword again brings no new FLAGS.
    again = raw.command(b"u STORE 1 -FLAGS ($hello)") + raw.command(b"v STORE 1 +FLAGS ($hello)")
    assert not any(line.startswith(b"* FLAGS") for line in again), again
    raw.close()


def test_a_keyword_set_by_another_session_is_announced_before_its_fetch(suite):
    deliver(suite)
    watcher = Raw(suite)
    watcher.command(b"s SELECT INBOX")
    setter = imap(suite)
    setter.select("INBOX")
    setter.store("1", "+FLAGS", "($seenElsewhere)")
    lines = watcher.command(b"n NOOP")
    flags_at = next(i for i, line in enumerate(lines) if line.startswith(b"* FLAGS"))
    fetch_at = next(i for i, line in enumerate(lines) if b"FETCH" in line)
    assert flags_at < fetch_at and b"$seenElsewhere" in lines[flags_at], lines
    lines = watcher.command(b"f FETCH 1 (FLAGS)")
    assert not any(line.startswith(b"* FLAGS") for line in lines)
    watcher.close()
    setter.logout()


def test_select_lists_the_folders_keywords_in_flags_and_permanentflags(suite):
    deliver(suite)
    client = imap(suite)
    client.select("INBOX")
    client.store("1", "+FLAGS", "($work)")
    client.logout()
    raw = Raw(suite)
    lines = raw.command(b"s SELECT INBOX")
    assert any(line.startswith(b"* FLAGS") and b"$work" in line for line in lines)
    assert any(b"[PERMANENTFLAGS" in line and b"$work" in line for line in lines)
    raw.close()


# --- 4. \Recent belongs to one session --------------------------------------------------------


def _recent_uids(client) -> set[int]:
    typ, data = client.uid("SEARCH", None, "RECENT")
    assert typ == "OK"
    return {int(n) for n in data[0].split()}


def test_recent_is_seen_by_one_session_only_while_mail_arrives(suite):
    sessions = [imap(suite) for _ in range(4)]
    for client in sessions:
        client.select("INBOX")
    stop = time.monotonic() + 4
    count = 0
    while time.monotonic() < stop and count < 40:
        deliver(suite, subject=f"r{count}")
        count += 1
        for client in sessions:
            client.noop()
    for client in sessions:
        client.noop()
    seen: list[int] = []
    for client in sessions:
        seen += _recent_uids(client)
    assert len(seen) == len(set(seen)), sorted(seen)
    assert set(seen) == set(range(1, count + 1))
    for client in sessions:
        client.logout()


def test_examine_reports_recent_as_status_does_without_taking_it(suite):
    deliver(suite, subject="a")
    deliver(suite, subject="b")
    client = imap(suite)
    typ, data = client.status("INBOX", "(RECENT)")
    assert b"RECENT 2" in data[0]
    client.select("INBOX", readonly=True)
    assert client.untagged_responses.pop("RECENT") == [b"2"]
    assert _recent_uids(client) == {1, 2}
    client.unselect() if hasattr(client, "unselect") else client.close()
    typ, data = client.status("INBOX", "(RECENT)")
    assert b"RECENT 2" in data[0]  # EXAMINE took nothing
    client.select("INBOX")  # the first read-write session takes them
    assert client.untagged_responses.pop("RECENT") == [b"2"]
    other = imap(suite)
    typ, data = other.status("INBOX", "(RECENT)")
    assert b"RECENT 0" in data[0]
    other.logout()
    client.logout()


# --- 5. UIDVALIDITY never reused ----------------------------------------------------------------


def test_folder_recreated_within_a_second_gets_a_larger_uidvalidity(suite):
    client = imap(suite)
    validities = []
    appended = []
    for _ in range(3):
        assert client.create("Reborn")[0] == "OK"
        typ, data = client.append("Reborn", None, None, b"Subject: x\r\n\r\nbody\r\n")
        assert typ == "OK"
        code = re.search(rb"APPENDUID (\d+) (\d+)", data[0])
        appended.append((int(code[1]), int(code[2])))
        typ, data = client.status("Reborn", "(UIDVALIDITY)")
        validities.append(int(re.search(rb"UIDVALIDITY (\d+)", data[0])[1]))
        assert client.delete("Reborn")[0] == "OK"
    assert validities == sorted(set(validities)), validities
    assert len(set(appended)) == 3, appended
    client.logout()


def test_uidvalidity_stays_above_a_deleted_folders_after_a_restart_of_the_index(suite):
    """The high-water mark is kept per user, outside the folder, so it outlives the folder."""
    from mailsuite.store.index import FolderIndex

    client = imap(suite)
    client.create("Gone")
    typ, data = client.status("Gone", "(UIDVALIDITY)")
    first = int(re.search(rb"UIDVALIDITY (\d+)", data[0])[1])
    client.delete("Gone")
    client.logout()
    root = suite.maildir("alice@example.com")
    (root / ".Gone" / "new").mkdir(parents=True)
    (root / ".Gone" / "cur").mkdir()
    (root / ".Gone" / "tmp").mkdir()
    index = FolderIndex(root / ".Gone")
    try:
        assert index.uidvalidity > first
    finally:
        index.close()


# --- 6. LOGOUT closes the connection ------------------------------------------------------------


@pytest.mark.parametrize("role", ["imaps", "imap"])
def test_logout_over_tls_closes_without_waiting_for_the_client(suite, role):
    raw = socket.create_connection(("127.0.0.1", suite.port(role)), timeout=10)
    if role == "imap":
        raw.recv(4096)
        raw.sendall(b"s STARTTLS\r\n")
        assert raw.recv(4096).startswith(b"s OK")
    # The client never answers the server's close_notify (unwrap is never called).
    sock = suite.tls_context().wrap_socket(raw, server_hostname="mx.test.example")
    reader = sock.makefile("rb")
    if role == "imaps":
        reader.readline()
    sock.sendall(b"a LOGOUT\r\n")
    lines = [reader.readline(), reader.readline()]
    assert lines[0].startswith(b"* BYE") and lines[1].startswith(b"a OK"), lines
    # The TLS layer reports the close_notify as EOF; then the TCP connection must be closed
    # by the server: a read below TLS sees EOF, not a timeout.
    assert reader.read() == b""
    below = socket.socket(fileno=os.dup(sock.fileno()))
    below.settimeout(3)
    try:
        assert below.recv(1024) == b""
    finally:
        below.close()
        sock.close()


def test_logout_frees_the_connection_slot_at_once(make_suite):
    suite = make_suite({"imap.max_connections_per_user": 1})
    suite.add_user("alice@example.com")
    raw = Raw(suite)
    raw.send(b"a LOGOUT\r\n")
    raw.until(b"a")  # no close_notify answered: the socket stays open on our side
    assert _wait_for(lambda: _open_sessions(suite) == 0, 3)
    client = imaps(suite)
    client.logout()
    raw.close()


# --- 7. LSUB and unsubscribed parents ----------------------------------------------------------


def test_lsub_percent_shows_an_unsubscribed_parent_of_subscribed_children_as_noselect(suite):
    client = imap(suite)
    for name in ("Parent", "Parent/Child", "Other"):
        client.create(name)
    client.unsubscribe("Parent")
    client.unsubscribe("Other")
    client.subscribe("Parent/Child")
    typ, data = client.lsub('""', "%")
    assert typ == "OK"
    parent = [d for d in data if d and d.endswith(b'"Parent"') or d and d.endswith(b" Parent")]
    assert len(parent) == 1 and b"\\Noselect" in parent[0], data
    assert not any(b"Parent/Child" in d for d in data if d), data
    assert not any(b"Other" in d for d in data if d), data
    typ, data = client.lsub('""', "*")
    assert any(b"Parent/Child" in d for d in data if d)
    assert not any(d.endswith(b'"Parent"') or d.endswith(b" Parent") for d in data if d), data
    typ, data = client.lsub('""', "Parent/%")
    assert any(b"Parent/Child" in d and b"\\Noselect" not in d for d in data if d), data
    client.logout()


def test_lsub_subscribed_parent_is_listed_without_noselect(suite):
    client = imap(suite)
    client.create("Top")
    client.create("Top/Sub")
    client.subscribe("Top")
    client.subscribe("Top/Sub")
    typ, data = client.lsub('""', "%")
    top = [d for d in data if d and (d.endswith(b'"Top"') or d.endswith(b" Top"))]
    assert len(top) == 1 and b"\\Noselect" not in top[0], data
    client.logout()


# --- 8. ENVELOPE groups and source routes ------------------------------------------------------


def _send_raw(suite, message: str) -> None:
    """A message exactly as written (headers of our choosing), through the MX listener."""
    with suite.smtp() as smtp:
        smtp.sendmail("a@example.com", ["alice@example.com"], message.encode())


def _last_envelope(suite) -> bytes:
    client = imap(suite)
    client.select("INBOX")
    typ, data = client.fetch("*", "(ENVELOPE)")
    client.logout()
    assert typ == "OK"
    return data[0]


def test_envelope_keeps_an_empty_group(suite):
    _send_raw(
        suite,
        "From: a@example.com\r\nTo: undisclosed-recipients:;\r\nSubject: g\r\n"
        "Date: Mon, 7 Feb 2022 10:00:00 +0000\r\n\r\nbody\r\n",
    )
    envelope = _last_envelope(suite)
    assert b'((NIL NIL "undisclosed-recipients" NIL)(NIL NIL NIL NIL))' in envelope, envelope


def test_envelope_keeps_group_markers_around_members(suite):
    _send_raw(
        suite,
        "From: a@example.com\r\nTo: x@example.com\r\n"
        "Cc: Friends: c1@example.com, Carl <c2@example.org>;, d@example.net\r\n"
        "Subject: g\r\n\r\nbody\r\n",
    )
    envelope = _last_envelope(suite)
    assert (
        b'((NIL NIL "Friends" NIL)(NIL NIL "c1" "example.com")("Carl" NIL "c2" "example.org")'
        b'(NIL NIL NIL NIL)(NIL NIL "d" "example.net"))'
    ) in envelope, envelope


def test_envelope_keeps_the_source_route_of_an_obsolete_route_address(suite):
    _send_raw(
        suite,
        "From: Old Timer <@relay1.example,@relay2.example:user@example.com>\r\n"
        "To: y@example.com\r\nSubject: r\r\n\r\nbody\r\n",
    )
    envelope = _last_envelope(suite)
    assert b'(("Old Timer" "@relay1.example,@relay2.example" "user" "example.com"))' in envelope


# --- 9. SEARCH address keys ignore comments and folding ----------------------------------------


def test_search_from_matches_an_address_written_with_comments(suite):
    deliver(suite, subject="plain")
    _send_raw(
        suite,
        "From: <user-from (comment)@ (comment) domain.org>\r\nTo: alice@example.com\r\n"
        "Subject: commented\r\n\r\nbody\r\n",
    )
    _send_raw(
        suite,
        "From: Someone\r\n <user-from\r\n @domain.org>\r\nTo: alice@example.com\r\n"
        "Subject: folded\r\n\r\nbody\r\n",
    )
    client = imap(suite)
    client.select("INBOX")
    typ, data = client.search(None, "FROM", "user-from@domain.org")
    assert data == [b"2 3"], data
    typ, data = client.search(None, "FROM", "comment")  # the raw text still matches too
    assert data == [b"2"], data
    typ, data = client.search(None, "TO", "alice@example.com")
    assert data == [b"1 2 3"], data
    client.logout()


# --- 2b. the same race inside one FETCH or SEARCH -------------------------------------------


def _vanishing(monkeypatch, method: str, victim: int = 2) -> None:
    """Make another program delete message ``victim`` at the moment the index is asked for its
    ``method`` (after the session looked it up): the interleaving a busy server meets."""
    from mailsuite.store.index import FolderIndex

    original = getattr(FolderIndex, method)

    def vanishing(self, uid, *args):
        record = self.get(victim)
        if record is not None and uid == victim:
            os.unlink(self.file_path(record))
            self.sync(force=True)
        return original(self, uid, *args)

    monkeypatch.setattr(FolderIndex, method, vanishing)


def test_fetch_answers_the_others_when_a_message_goes_while_it_is_rendered(suite, monkeypatch):
    for i in range(3):
        deliver(suite, subject=f"m{i}", body="x" * 100)
    client = imap(suite)
    client.select("INBOX")
    _vanishing(monkeypatch, "structure")
    typ, data = client.fetch("1:3", "(BODYSTRUCTURE BODY.PEEK[TEXT])")
    assert typ == "OK", data
    answered = [d[0] if isinstance(d, tuple) else d for d in data if d != b")"]
    numbers = sorted(int(a.split(b" ", 1)[0]) for a in answered)
    assert numbers == [1, 3], data
    client.noop()
    assert client.untagged_responses.pop("EXPUNGE") == [b"2"]
    client.logout()


def test_fetch_tagged_reply_says_expungeissued(suite, monkeypatch):
    for i in range(3):
        deliver(suite, subject=f"m{i}")
    raw = Raw(suite)
    raw.command(b"s SELECT INBOX")
    _vanishing(monkeypatch, "structure")
    lines = raw.command(b"f FETCH 1:3 (BODYSTRUCTURE)")
    assert lines[-1].startswith(b"f OK [EXPUNGEISSUED]"), lines
    assert not any(b"SERVERBUG" in line for line in lines)
    raw.close()


def test_search_skips_a_message_that_goes_while_its_body_is_read(suite, monkeypatch):
    for i in range(3):
        deliver(suite, subject=f"m{i}", body="needle\r\n")
    client = imap(suite)
    client.select("INBOX")
    _vanishing(monkeypatch, "structure")
    typ, data = client.search(None, "BODY", "needle")
    assert typ == "OK", data
    assert data == [b"1 3"], data
    client.logout()


def test_a_message_arriving_between_the_recent_claim_and_the_changes_is_recent_once(
    suite, monkeypatch
):
    """A delivery that lands after a session claimed \\Recent but before it read the changes:
    the next session must not see it as recent a second time."""
    from mailsuite.store.index import FolderIndex

    deliver(suite, subject="first")
    watcher, other = imap(suite), imap(suite)
    watcher.select("INBOX")
    other.select("INBOX")
    original = FolderIndex.changes_since
    delivered: list[bool] = []

    def arrives_meanwhile(self, modseq, known=()):
        if not delivered:
            delivered.append(True)
            folder = self.path
            (folder / "tmp" / "late.1.host").write_bytes(b"Subject: late\r\n\r\nx\r\n")
            os.rename(folder / "tmp" / "late.1.host", folder / "new" / "late.1.host")
            self.sync(force=True)
        return original(self, modseq, known)

    monkeypatch.setattr(FolderIndex, "changes_since", arrives_meanwhile)
    watcher.noop()
    monkeypatch.setattr(FolderIndex, "changes_since", original)
    other.noop()
    # The watcher's claim ended before the late message: it is the other session's.
    assert (_recent_uids(watcher), _recent_uids(other)) == ({1}, {2})
    watcher.logout()
    other.logout()


def test_append_to_a_folder_deleted_and_created_again_meanwhile_is_trycreate(suite, monkeypatch):
    """Found by the stress test: the folder went while APPEND wrote into it, and was already
    back when the server looked again; the answer is still TRYCREATE, never SERVERBUG."""
    import shutil

    from mailsuite.store.index import FolderIndex

    client = imap(suite)
    client.create("Flaky")
    original = FolderIndex.add_file

    def recreated_meanwhile(self, source, *args, **kwargs):
        shutil.rmtree(self.path)
        for sub in ("tmp", "new", "cur"):
            (self.path / sub).mkdir(parents=True)
        return original(self, source, *args, **kwargs)

    monkeypatch.setattr(FolderIndex, "add_file", recreated_meanwhile)
    typ, data = client.append("Flaky", None, None, b"Subject: x\r\n\r\nbody\r\n")
    assert typ == "NO" and data[0].startswith(b"[TRYCREATE]"), data
    monkeypatch.setattr(FolderIndex, "add_file", original)
    assert client.noop()[0] == "OK"
    client.logout()
