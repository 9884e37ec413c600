"""QRESYNC (RFC 7162 §3.2): ENABLE, SELECT (QRESYNC ...), VANISHED, UID FETCH (... VANISHED)."""

from __future__ import annotations

import re

from imap_helpers import Raw, deliver, imap


def _code(lines: list[bytes], name: bytes) -> int:
    for line in lines:
        match = re.search(rb"\[" + name + rb" (\d+)\]", line)
        if match:
            return int(match.group(1))
    raise AssertionError(f"no {name!r} in {lines}")


def _qresync_client(suite) -> Raw:
    client = Raw(suite)
    reply = client.command(b"e ENABLE QRESYNC")
    assert reply[0] == b"* ENABLED QRESYNC\r\n" and reply[-1].startswith(b"e OK")
    return client


def _changes_by_another_session(suite) -> None:
    """Flag UID 2, expunge UID 3, deliver UID 6 (five messages were there)."""
    other = imap(suite)
    other.select("INBOX")
    other.uid("STORE", "2", "+FLAGS", "(\\Flagged)")
    other.uid("STORE", "3", "+FLAGS", "(\\Deleted)")
    other.expunge()
    other.logout()
    deliver(suite, subject="new")


def test_reconnecting_client_learns_expunges_and_flag_changes_at_select(suite):
    for i in range(5):
        deliver(suite, subject=f"m{i}")
    client = _qresync_client(suite)
    reply = client.command(b"s1 SELECT INBOX")
    uidvalidity, seen = _code(reply, b"UIDVALIDITY"), _code(reply, b"HIGHESTMODSEQ")
    client.close()  # the client goes away; others change the folder meanwhile
    _changes_by_another_session(suite)

    client = _qresync_client(suite)
    reply = client.command(b"s2 SELECT INBOX (QRESYNC (%d %d 1:5))" % (uidvalidity, seen))
    assert reply[-1].startswith(b"s2 OK [READ-WRITE]")
    assert b"* 5 EXISTS\r\n" in reply
    resync = [line for line in reply if line.startswith((b"* VANISHED", b"* 2 FETCH", b"* 5 F"))]
    # VANISHED (EARLIER) first, then FETCH with UID, FLAGS and MODSEQ; UID 6 is outside 1:5.
    assert resync[0] == b"* VANISHED (EARLIER) 3\r\n"
    assert re.fullmatch(rb"\* 2 FETCH \(UID 2 FLAGS \(\\Flagged\) MODSEQ \(\d+\)\)\r\n", resync[1])
    assert len(resync) == 2, reply
    assert reply.index(resync[0]) > reply.index(b"* 5 EXISTS\r\n")

    # Without known UIDs every UID counts, so the new message is reported too; a second SELECT
    # first closes the folder selected before ([CLOSED]).
    reply = client.command(b"s3 EXAMINE INBOX (QRESYNC (%d %d))" % (uidvalidity, seen))
    assert reply[0] == b"* OK [CLOSED] Previous folder closed\r\n"
    assert b"* VANISHED (EARLIER) 3\r\n" in reply
    assert any(line.startswith(b"* 5 FETCH (UID 6 FLAGS (") for line in reply), reply
    # A UIDVALIDITY the folder never had: a plain SELECT, nothing to resync.
    reply = client.command(b"s4 SELECT INBOX (QRESYNC (%d %d))" % (uidvalidity + 1, seen))
    assert not any(b"VANISHED" in line or b"FETCH" in line for line in reply), reply
    client.close()


def test_uid_fetch_vanished_and_expunges_reported_as_vanished(suite):
    for i in range(5):
        deliver(suite, subject=f"m{i}")
    client = _qresync_client(suite)
    seen = _code(client.command(b"s1 SELECT INBOX"), b"HIGHESTMODSEQ")
    other = imap(suite)
    other.select("INBOX")
    other.uid("STORE", "4", "+FLAGS", "(\\Deleted)")
    other.expunge()
    # The expunge by the other session arrives as VANISHED, never as EXPUNGE.
    reply = client.command(b"n1 NOOP")
    assert reply[0] == b"* VANISHED 4\r\n" and not any(b"EXPUNGE" in line for line in reply)
    other.uid("STORE", "1", "+FLAGS", "(\\Seen)")
    reply = client.command(b"f1 UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d VANISHED)" % seen)
    assert reply[0] == b"* VANISHED (EARLIER) 4\r\n"
    assert re.fullmatch(rb"\* 1 FETCH \(UID 1 FLAGS \([^)]*\\Seen\) MODSEQ \(\d+\)\)\r\n", reply[1])
    assert len(reply) == 3  # UIDs 2, 3 and 5 did not change
    assert reply[-1].startswith(b"f1 OK")
    assert client.command(b"f2 FETCH 1 (FLAGS) (CHANGEDSINCE 1 VANISHED)")[-1].startswith(b"f2 BAD")
    assert client.command(b"f3 UID FETCH 1 (FLAGS) (VANISHED)")[-1].startswith(b"f3 BAD")
    # Our own expunges too, with the new HIGHESTMODSEQ on the tagged OK (§3.2.7).
    client.command(b"t1 UID STORE 1,2 +FLAGS.SILENT (\\Deleted)")
    reply = client.command(b"x1 EXPUNGE")
    assert reply[0] == b"* VANISHED 1:2\r\n"
    assert _code(reply, b"HIGHESTMODSEQ") > seen and reply[-1].startswith(b"x1 OK")
    other.logout()
    client.close()


def test_expunges_held_back_during_fetch_come_with_a_lower_highestmodseq(suite):
    for i in range(3):
        deliver(suite, subject=f"m{i}")
    client = _qresync_client(suite)
    client.command(b"s1 SELECT INBOX")
    other = imap(suite)
    other.select("INBOX")
    other.uid("STORE", "1", "+FLAGS", "(\\Deleted)")
    other.expunge()
    expunge_modseq = int(
        re.search(rb"HIGHESTMODSEQ (\d+)", other.status("INBOX", "(HIGHESTMODSEQ)")[1][0])[1]
    )
    reply = client.command(b"f1 FETCH 1:* (MODSEQ)")
    assert not any(b"VANISHED" in line for line in reply)  # not during FETCH (RFC 3501 §7.4.1)
    assert _code(reply, b"HIGHESTMODSEQ") < expunge_modseq
    assert client.command(b"n1 NOOP")[0] == b"* VANISHED 1\r\n"
    other.logout()
    client.close()


def test_resync_stays_exact_after_the_expunge_history_was_pruned(suite, monkeypatch):
    from mailsuite.store.index import FolderIndex

    monkeypatch.setattr(FolderIndex, "expunged_kept", 1)
    for i in range(6):
        deliver(suite, subject=f"m{i}")
    client = _qresync_client(suite)
    reply = client.command(b"s1 SELECT INBOX")
    uidvalidity, seen = _code(reply, b"UIDVALIDITY"), _code(reply, b"HIGHESTMODSEQ")
    client.close()
    other = imap(suite)
    other.select("INBOX")
    for uid in ("2", "4", "5"):
        other.uid("STORE", uid, "+FLAGS", "(\\Deleted)")
        other.expunge()
    other.logout()
    client = _qresync_client(suite)
    reply = client.command(b"s2 SELECT INBOX (QRESYNC (%d %d 1:6))" % (uidvalidity, seen))
    assert b"* VANISHED (EARLIER) 2,4:5\r\n" in reply, reply
    client.close()


def test_imapclient_copes_with_closed_and_vanished(suite):
    from imap_helpers import imapclient_session

    for i in range(3):
        deliver(suite, subject=f"m{i}")
    client = imapclient_session(suite)
    assert client.enable("QRESYNC") == [b"QRESYNC"]
    client.select_folder("Sent")
    info = client.select_folder("INBOX")  # implicitly closes Sent: * OK [CLOSED]
    assert info[b"EXISTS"] == 3 and info[b"HIGHESTMODSEQ"] > 0
    client.delete_messages([1, 2])
    text, untagged = client.expunge()
    assert text.startswith(b"[HIGHESTMODSEQ ")
    assert untagged == [(b"VANISHED", b"1:2")]
    assert client.search("ALL") == [3]
    client.logout()
