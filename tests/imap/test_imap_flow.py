"""The everyday flow, as Thunderbird does it: delivery, IDLE, FETCH, flags, restart, Sent, Trash."""

from __future__ import annotations

import re
import time

from conftest import index_on_disk, start_suite
from imap_helpers import deliver, imap, imapclient_session

MULTIPART = (
    "MIME-Version: 1.0\r\n"
    'Content-Type: multipart/mixed; boundary="XX"\r\n'
    "\r\n"
    "preamble\r\n"
    "--XX\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "\r\n"
    "Body text here.\r\n"
    "--XX\r\n"
    'Content-Type: application/pdf; name="a.pdf"\r\n'
    'Content-Disposition: attachment; filename="a.pdf"\r\n'
    "Content-Transfer-Encoding: base64\r\n"
    "\r\n"
    "JVBERi0xLjQK\r\n"
    "--XX--\r\n"
)


def test_idle_sees_smtp_delivery_then_fetch_store_and_restart(suite, reactor_thread, tmp_path):
    client = imapclient_session(suite)
    info = client.select_folder("INBOX")
    uidvalidity = info[b"UIDVALIDITY"]
    client.idle()
    started = time.monotonic()
    deliver(suite, subject="first")
    responses = client.idle_check(timeout=5)
    client.idle_done()
    assert (1, b"EXISTS") in responses
    assert time.monotonic() - started < 5
    fetched = client.fetch(
        client.search("ALL"), ["UID", "FLAGS", "RFC822.SIZE", "ENVELOPE", "BODY.PEEK[]"]
    )
    ((uid, data),) = fetched.items()
    assert data[b"ENVELOPE"].subject == b"first"
    assert data[b"BODY[]"].startswith(b"Return-Path:")
    assert data[b"RFC822.SIZE"] == len(data[b"BODY[]"])
    assert b"\\Seen" not in data[b"FLAGS"]
    client.add_flags([uid], [b"\\Seen", b"$label1"])
    client.logout()
    # The flag is mirrored in the Maildir file name.
    names = [p.name for p in (suite.maildir("alice@example.com") / "cur").iterdir()]
    assert len(names) == 1 and names[0].endswith(":2,S")

    reactor_thread.call(suite.service.stopService)
    again = start_suite(reactor_thread, tmp_path)
    try:
        client = imapclient_session(again)
        info = client.select_folder("INBOX")
        assert info[b"UIDVALIDITY"] == uidvalidity
        flags = client.get_flags(client.search("ALL"))
        assert flags == {uid: (b"$label1", b"\\Seen")} or set(flags[uid]) == {
            b"\\Seen",
            b"$label1",
        }
        client.logout()
    finally:
        reactor_thread.call(again.service.stopService)


def test_append_to_sent_and_move_to_trash(suite):
    client = imap(suite)
    message = b"From: alice@example.com\r\nSubject: sent copy\r\n\r\nHello\r\n"
    typ, data = client.append("Sent", "(\\Seen)", None, message)
    assert typ == "OK" and b"APPENDUID" in data[0]
    uidvalidity, uid = re.search(rb"APPENDUID (\d+) (\d+)", data[0]).groups()
    client.select("Sent")
    typ, data = client.uid("FETCH", uid.decode(), "(FLAGS BODY.PEEK[])")
    assert data[0][1] == message and b"\\Seen" in data[0][0]
    typ, data = client.uid("MOVE", uid.decode(), "Trash")
    assert typ == "OK"
    assert any(b"COPYUID" in (line or b"") for line in client.untagged_responses.get("OK", []))
    typ, data = client.select("Sent")
    assert data == [b"0"]
    typ, data = client.select("Trash")
    assert data == [b"1"]
    client.logout()


def test_expunge_and_uid_expunge(suite):
    for i in range(4):
        deliver(suite, subject=f"m{i}")
    client = imap(suite)
    client.select("INBOX")
    client.store("1,2", "+FLAGS", "(\\Deleted)")
    typ, data = client.uid("EXPUNGE", "1")
    assert typ == "OK"
    assert client.untagged_responses.pop("EXPUNGE") == [b"1"]  # only UID 1 went
    typ, data = client.search(None, "ALL")
    assert data == [b"1 2 3"]
    typ, data = client.expunge()
    assert data == [b"1"]
    typ, data = client.uid("SEARCH", None, "ALL")
    assert data == [b"3 4"]
    client.logout()


def test_partial_fetch_and_bodystructure(suite):
    deliver(
        suite,
        subject="multi",
        body=MULTIPART.split("\r\n\r\n", 1)[1],
        extra=MULTIPART.split("\r\n\r\n", 1)[0] + "\r\n",
    )
    client = imap(suite)
    client.select("INBOX")
    typ, data = client.fetch("1", "(BODYSTRUCTURE)")
    structure = data[0]
    assert b'("TEXT" "PLAIN" ("charset" "utf-8")' in structure
    assert (
        b'"APPLICATION" "PDF"' in structure and b'("attachment" ("filename" "a.pdf"))' in structure
    )
    assert b'"MIXED" ("boundary" "XX")' in structure
    typ, data = client.fetch("1", "(BODY.PEEK[1] BODY.PEEK[2.MIME] BODY.PEEK[TEXT]<0.8>)")
    parts = {
        item[0].split(b" ")[-2] if False else item[0]: item[1]
        for item in data
        if isinstance(item, tuple)
    }
    values = list(parts.values())
    assert b"Body text here." in values[0]
    assert values[1].startswith(b"Content-Type: application/pdf")
    assert values[2] == b"preamble"
    typ, data = client.fetch("1", "(FLAGS)")
    assert b"\\Seen" not in data[0]
    client.fetch("1", "(BODY[HEADER.FIELDS (SUBJECT)])")
    typ, data = client.fetch("1", "(FLAGS)")
    assert b"\\Seen" in data[0]
    client.logout()


def test_first_select_of_a_migrated_maildir_writes_its_index_after_answering(suite):
    """Files copied in by another program get UIDs at the first SELECT; the index reaches the
    disk in the background right after the answer, with the UIDs that answer promised."""
    inbox = suite.maildir("alice@example.com")
    for sub in ("tmp", "new", "cur"):
        (inbox / sub).mkdir(parents=True, exist_ok=True)
    for n in range(30):
        message = f"From: a@b.example\r\nSubject: old {n}\r\n\r\nbody {n}\r\n".encode()
        info = ":2,S" if n % 2 else ""
        (inbox / ("cur" if info else "new") / f"{1600000000 + n}.M{n}P9.old{info}").write_bytes(
            message
        )
    client = imap(suite)
    typ, data = client.select("INBOX")
    assert typ == "OK" and data == [b"30"]
    uidvalidity = int(client.response("UIDVALIDITY")[1][0])
    typ, data = client.uid("SEARCH", "UNSEEN")
    unseen = [int(u) for u in data[0].split()]
    assert len(unseen) == 15
    client.logout()
    deadline = time.monotonic() + 10
    meta, rows = index_on_disk(inbox)
    while not rows and time.monotonic() < deadline:
        time.sleep(0.05)
        meta, rows = index_on_disk(inbox)
    assert meta["uidvalidity"] == uidvalidity and len(rows) == 30
    assert [uid for uid, _key, flags in rows if flags == ""] == unseen


def test_a_bare_lf_maildir_another_program_wrote_answers_crlf_sizes(suite):
    """mbsync, getmail and many migrations leave LF files named ``,S=<size on disk>`` without
    ``,W=``: the first SELECT does not count their line ends, FETCH RFC822.SIZE and SEARCH
    LARGER/SMALLER do when asked, and the answer is the CRLF size RFC 3501 wants."""
    inbox = suite.maildir("alice@example.com")
    for sub in ("tmp", "new", "cur"):
        (inbox / sub).mkdir(parents=True, exist_ok=True)
    sizes = []
    for n in range(6):
        message = f"From: a@b.example\nSubject: lf {n}\n\n".encode() + b"line\n" * (10 * n + 1)
        (inbox / "cur" / f"{1600000000 + n}.{n}_1.mbsync,S={len(message)}:2,S").write_bytes(
            message
        )
        sizes.append(len(message) + message.count(b"\n"))
    client = imap(suite)
    assert client.select("INBOX") == ("OK", [b"6"])
    typ, data = client.fetch("1:*", "(RFC822.SIZE)")
    assert [int(d.split(b"RFC822.SIZE ")[1].rstrip(b")")) for d in data] == sizes
    typ, data = client.search(None, "LARGER", str(sizes[2]))
    assert data == [b"4 5 6"]
    typ, data = client.fetch("2", "(BODY[])")
    assert len(data[0][1]) == sizes[1] and b"\n" not in data[0][1].replace(b"\r\n", b"")
    client.logout()
