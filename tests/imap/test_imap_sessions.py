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
