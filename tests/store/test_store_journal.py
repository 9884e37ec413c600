"""Delivery journal: a lone message is durable after one fsync, its Maildir links are finished
from the journal after a crash, and nothing unacknowledged or already delivered is delivered."""

from __future__ import annotations

import os

import pytest

from mailsuite.queue.spool import QueueSpool
from mailsuite.smtp.delivery import CommitResult, Envelope, MessageRouter
from mailsuite.store.incoming import IncomingMessage
from mailsuite.store.journal import ATTRIBUTE, DeliveryJournal
from mailsuite.store.maildir import MaildirStore

BOB = "bob@example.com"
ANN = "ann@example.com"
MESSAGE = b"Return-Path: <a@remote.example>\r\nSubject: hi\r\n\r\nbody\r\n"


@pytest.fixture
def store(tmp_path) -> MaildirStore:
    return MaildirStore(tmp_path / "mail", "mx.example.com")


@pytest.fixture
def journal(tmp_path) -> DeliveryJournal:
    journal = DeliveryJournal(tmp_path / "spool" / "journal")
    if not journal.available():
        if os.environ.get("CI"):
            pytest.fail("the test directory keeps no user extended attributes: the journal is off")
        pytest.skip("this filesystem keeps no user extended attributes")
    return journal


def _entries(journal: DeliveryJournal) -> list[str]:
    return sorted(p.name for p in journal.directory.iterdir() if p.stat().st_size)


def test_a_recorded_entry_is_delivered_by_recovery_once(store, journal):
    entry = journal.take()
    keys = [store.unique_name(len(MESSAGE)), store.unique_name(len(MESSAGE))]
    journal.record(entry, MESSAGE, [(BOB, keys[0]), (ANN, keys[1])])
    # The crash came before any link: recovery makes both, then drops the entry.
    assert journal.recover(store.redeliver) == 1
    assert (store.new_dir(BOB) / keys[0]).read_bytes() == MESSAGE
    assert (store.new_dir(ANN) / keys[1]).read_bytes() == MESSAGE
    assert _entries(journal) == []
    assert os.listxattr(store.new_dir(BOB) / keys[0]) == []
    assert journal.recover(store.redeliver) == 0  # nothing left to do


def test_recovery_does_not_deliver_again_what_was_linked_or_read(store, journal):
    entry = journal.take()
    keys = [store.unique_name(len(MESSAGE)), store.unique_name(len(MESSAGE))]
    journal.record(entry, MESSAGE, [(BOB, keys[0]), (ANN, keys[1])])
    store.deliver_named(entry, BOB, keys[0])
    store.deliver_named(entry, ANN, keys[1])
    # Ann's client read it already: IMAP moved it to cur/ with the \Seen flag.
    ann_root = store.maildir_path(ANN)
    os.rename(ann_root / "new" / keys[1], ann_root / "cur" / f"{keys[1]}:2,S")
    assert journal.recover(store.redeliver) == 1
    assert [p.name for p in store.new_dir(BOB).iterdir()] == [keys[0]]
    assert list(store.new_dir(ANN).iterdir()) == []
    assert [p.name for p in (ann_root / "cur").iterdir()] == [f"{keys[1]}:2,S"]


@pytest.mark.parametrize("damage", ["no envelope", "short data", "other data"])
def test_an_entry_that_was_never_acknowledged_is_dropped(store, journal, damage):
    entry = journal.take()
    key = store.unique_name(len(MESSAGE))
    journal.record(entry, MESSAGE, [(BOB, key)])
    if damage == "no envelope":
        os.removexattr(entry, ATTRIBUTE)
    elif damage == "short data":
        os.truncate(entry, len(MESSAGE) // 2)
    else:
        entry.write_bytes(MESSAGE.replace(b"body", b"BODY"))
    assert journal.recover(store.redeliver) == 0
    assert not store.new_dir(BOB).exists() or list(store.new_dir(BOB).iterdir()) == []
    assert list(journal.directory.iterdir()) == []


def test_a_key_the_store_would_not_make_is_never_used_as_a_path(store, journal, tmp_path):
    entry = journal.take()
    journal.record(entry, MESSAGE, [(BOB, "../../../escape")])
    assert journal.recover(store.redeliver) == 0
    assert not (tmp_path / "escape").exists()
    assert entry.exists()  # kept for a person to look at, not silently dropped


def test_pool_files_are_created_ahead_and_handed_out_once(journal):
    taken = {journal.take() for _ in range(70)}
    assert len(taken) == 70  # past one refill of 64
    assert all(path.exists() and path.stat().st_size == 0 for path in taken)


def test_router_acknowledges_a_lone_message_through_the_journal(tmp_path, store, journal):
    router = MessageRouter(store, QueueSpool(tmp_path / "queue"), journal=journal)
    incoming = IncomingMessage(tmp_path / "spool")
    incoming.write(MESSAGE)
    [result] = router.commit_batch([(incoming, Envelope("a@remote.example", [BOB]), "id1")])
    assert isinstance(result, CommitResult)
    [key] = result.maildir_keys
    # Visible at once (IMAP/POP3 see it), and durable through the journal until settled.
    assert (store.new_dir(BOB) / key).read_bytes() == MESSAGE
    assert len(_entries(journal)) == 1
    router.settle_journal()
    assert _entries(journal) == []
    assert os.listxattr(store.new_dir(BOB) / key) == []
    assert list((tmp_path / "spool").glob("*.incoming")) == []


def test_router_uses_the_batch_path_for_remote_recipients(tmp_path, store, journal):
    queue = QueueSpool(tmp_path / "queue")
    router = MessageRouter(store, queue, journal=journal)
    incoming = IncomingMessage(tmp_path / "spool")
    incoming.write(MESSAGE)
    envelope = Envelope("bob@example.com", [ANN], remote=["carol@remote.example"])
    [result] = router.commit_batch([(incoming, envelope, "id2")])
    assert isinstance(result, CommitResult) and result.queue_id
    assert _entries(journal) == []  # queued mail never waits in the journal
    assert len(list(store.new_dir(ANN).iterdir())) == 1
