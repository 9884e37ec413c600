"""Folder life cycle across sessions: RENAME INBOX, and DELETE/RENAME of a folder in use."""

from __future__ import annotations

from imap_helpers import Raw, deliver, imap


def test_rename_inbox_moves_its_messages_and_leaves_inbox_and_children(suite):
    deliver(suite, subject="one")
    deliver(suite, subject="two")
    client = imap(suite)
    assert client.create("INBOX/kid")[0] == "OK"
    watcher = imap(suite)
    watcher.select("INBOX")
    client.select("INBOX")
    client.store("1", "+FLAGS", "(\\Flagged $label1)")
    typ, data = client.rename("INBOX", "Old")
    assert typ == "OK", data
    # The session with INBOX selected is told the messages went.
    assert client.untagged_responses.pop("EXPUNGE") == [b"2", b"1"]
    watcher.noop()
    assert watcher.untagged_responses.pop("EXPUNGE") == [b"2", b"1"]
    typ, data = client.select("INBOX")
    assert data == [b"0"]
    typ, data = client.select("Old")
    assert data == [b"2"]
    typ, data = client.fetch("1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    fetched = [item for item in data if isinstance(item, tuple)]
    assert [item[1].strip() for item in fetched] == [b"Subject: one", b"Subject: two"]
    assert b"\\Flagged" in fetched[0][0] and b"$label1" in fetched[0][0]
    typ, data = client.list('""', "*")
    names = b"\n".join(data)
    assert b'"INBOX/kid"' in names and b'"Old"' in names and b'"INBOX"' in names
    # INBOX still receives mail; a second RENAME INBOX onto an existing folder is refused.
    deliver(suite, subject="three")
    assert client.status("INBOX", "(MESSAGES)")[1] == [b'"INBOX" (MESSAGES 1)']
    typ, data = client.rename("INBOX", "Old")
    assert typ == "NO" and b"ALREADYEXISTS" in data[0]
    assert client.status("INBOX", "(MESSAGES)")[1] == [b'"INBOX" (MESSAGES 1)']
    client.logout()
    watcher.logout()
    assert not list((suite.maildir("alice@example.com") / "cur").iterdir())


def test_rename_inbox_to_one_of_its_inferiors(suite):
    deliver(suite, subject="one")
    client = Raw(suite)
    assert client.command(b"r1 RENAME INBOX INBOX/archive")[-1].startswith(b"r1 OK")
    reply = client.command(b"r2 STATUS INBOX/archive (MESSAGES)")
    assert reply[0] == b'* STATUS "INBOX/archive" (MESSAGES 1)\r\n'
    assert client.command(b"r3 STATUS INBOX (MESSAGES)")[0].endswith(b"(MESSAGES 0)\r\n")
    client.close()


def _bye_then_eof(client: Raw) -> bytes:
    """The unsolicited BYE a session gets when its folder goes, then the end of the stream."""
    line = client.line()
    assert client.line() == b""
    return line


def test_deleting_a_folder_selected_elsewhere_ends_that_session_with_bye(suite):
    admin = imap(suite)
    for name in ("Work", "Other", "Parent/child"):
        assert admin.create(name)[0] == "OK"
    victim, idler, bystander, child = Raw(suite), Raw(suite), Raw(suite), Raw(suite)
    assert victim.command(b"v1 SELECT Work")[-1].startswith(b"v1 OK")
    assert idler.command(b"i1 SELECT Work")[-1].startswith(b"i1 OK")
    idler.send(b"i2 IDLE\r\n")
    assert idler.line().startswith(b"+")
    assert bystander.command(b"b1 SELECT Other")[-1].startswith(b"b1 OK")
    assert child.command(b"c1 SELECT Parent/child")[-1].startswith(b"c1 OK")
    assert admin.delete("Work")[0] == "OK"
    assert admin.delete("Parent")[0] == "OK"  # its child survives
    # Both sessions on Work hear BYE at once, without sending anything.
    assert _bye_then_eof(victim).startswith(b"* BYE Selected folder was deleted")
    assert _bye_then_eof(idler).startswith(b"* BYE")
    # Sessions on other folders, the deleted folder's child included, carry on.
    assert bystander.command(b"b2 NOOP")[-1].startswith(b"b2 OK")
    reply = child.command(b"c2 APPEND Parent/child {10}\r\nSubject: x")
    assert b"* 1 EXISTS\r\n" in reply and reply[-1].startswith(b"c2 OK")
    assert child.command(b"c3 NOOP")[-1].startswith(b"c3 OK")
    assert child.command(b"c4 FETCH 1 (FLAGS)")[-1].startswith(b"c4 OK")
    # The name can be used again, as a fresh folder.
    assert admin.create("Work")[0] == "OK"
    assert admin.select("Work") == ("OK", [b"0"])
    for client in (bystander, child):
        client.close()
    admin.logout()


def test_renaming_a_parent_ends_sessions_on_it_and_its_children(suite):
    admin = imap(suite)
    assert admin.create("Proj/Sub")[0] == "OK"
    on_parent, on_child = Raw(suite), Raw(suite)
    assert on_parent.command(b"p1 SELECT Proj")[-1].startswith(b"p1 OK")
    assert on_child.command(b"s1 SELECT Proj/Sub")[-1].startswith(b"s1 OK")
    admin.select("Proj/Sub")
    typ, data = admin.rename("Proj", "Done")  # not the parent of one's own selected folder
    assert typ == "NO" and b"INUSE" in data[0]
    admin.unselect()
    assert admin.rename("Proj", "Done")[0] == "OK"
    assert _bye_then_eof(on_parent).startswith(b"* BYE")
    assert _bye_then_eof(on_child).startswith(b"* BYE")
    assert admin.select("Done/Sub")[0] == "OK"
    admin.logout()


def test_folder_removed_by_another_program_ends_the_session_at_its_next_command(suite):
    import shutil

    admin = imap(suite)
    assert admin.create("Gone")[0] == "OK"
    admin.logout()
    client = Raw(suite)
    assert client.command(b"g1 SELECT Gone")[-1].startswith(b"g1 OK")
    shutil.rmtree(suite.maildir("alice@example.com") / ".Gone")
    client.send(b"g2 NOOP\r\n")
    assert _bye_then_eof(client).startswith(b"* BYE")


def test_idle_session_hears_bye_when_another_program_removes_its_folder(suite):
    import shutil

    admin = imap(suite)
    assert admin.create("Vanishing")[0] == "OK"
    admin.logout()
    client = Raw(suite)
    assert client.command(b"v1 SELECT Vanishing")[-1].startswith(b"v1 OK")
    client.send(b"v2 IDLE\r\n")
    assert client.line().startswith(b"+")
    shutil.rmtree(suite.maildir("alice@example.com") / ".Vanishing")
    assert _bye_then_eof(client).startswith(b"* BYE")


def test_a_session_walking_many_folders_leaves_only_recent_indexes_open(suite):
    """STATUS over more folders than the registry keeps: older indexes are let go (the
    selected one stays), and their counts are right when asked again."""
    import gc

    registry = suite.service.avatars.indexes
    keep = registry._keep
    client = imap(suite)
    names = [f"f{n}" for n in range(keep + 20)]
    for name in names:
        assert client.create(name)[0] == "OK"
    client.append(names[0], None, None, b"Subject: kept\r\n\r\nbody\r\n")
    client.select("INBOX")
    for name in names:
        typ, data = client.status(name, "(MESSAGES UIDNEXT)")
        assert typ == "OK", data
    gc.collect()
    assert registry.open_count() <= keep + 1  # + INBOX, held by the selection
    typ, data = client.status(names[0], "(MESSAGES UIDNEXT)")
    assert data == [f'"{names[0]}" (MESSAGES 1 UIDNEXT 2)'.encode()] or data == [
        f"{names[0]} (MESSAGES 1 UIDNEXT 2)".encode()
    ]
    client.logout()
