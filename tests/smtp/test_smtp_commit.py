"""Group commit: the commit thread batches waiting messages, and a batch's failures stay with the
jobs they belong to. Real files, a real thread and the real reactor (tests/conftest.py)."""

from __future__ import annotations

import os
import threading

import pytest
from twisted.internet.defer import DeferredList

from mailsuite.accounts.memory import release_free_memory
from mailsuite.queue.spool import QueueSpool
from mailsuite.safeio import sync_paths
from mailsuite.smtp.committer import CommitQueue
from mailsuite.smtp.delivery import CommitResult, Envelope, MessageRouter
from mailsuite.store.incoming import IncomingMessage
from mailsuite.store.maildir import MaildirStore


def test_waiting_jobs_are_committed_together_and_answered_in_order(reactor_thread):
    release = threading.Event()
    batches: list[list[int]] = []

    def process(jobs):
        batches.append(list(jobs))
        release.wait(10)
        return [ValueError(job) if job == 3 else job * 10 for job in jobs]

    commits = CommitQueue(process, reactor=reactor_thread.reactor)

    [first] = reactor_thread.call(lambda: [commits.submit(0)])  # a list: don't wait for it
    for _ in range(1000):  # the thread took job 0 alone and now waits for `release`
        if batches:
            break
        threading.Event().wait(0.01)
    rest = reactor_thread.call(lambda: [commits.submit(n) for n in range(1, 6)])
    release.set()
    outcomes = reactor_thread.call(lambda: DeferredList([first, *rest], consumeErrors=True))
    commits.stop()
    assert batches[0] == [0]
    assert sorted(n for batch in batches[1:] for n in batch) == [1, 2, 3, 4, 5]
    assert len(batches) <= 3  # the five waiting jobs did not go one by one
    assert [value for ok, value in outcomes if ok] == [0, 10, 20, 40, 50]
    [(ok, failure)] = [outcome for outcome in outcomes if not outcome[0]]
    assert failure.check(ValueError) and failure.value.args == (3,)


def test_a_batch_that_raises_fails_each_of_its_jobs(reactor_thread):
    def process(jobs):
        raise OSError("disk gone")

    commits = CommitQueue(process, reactor=reactor_thread.reactor)
    outcomes = reactor_thread.call(
        lambda: DeferredList([commits.submit(n) for n in range(3)], consumeErrors=True)
    )
    commits.stop()
    assert [ok for ok, _ in outcomes] == [False, False, False]
    assert all(failure.check(OSError) for _, failure in outcomes)


def _incoming(spool, body: bytes) -> IncomingMessage:
    incoming = IncomingMessage(spool)
    incoming.write(body)
    return incoming


@pytest.mark.parametrize("use_syncfs", [True, False], ids=["syncfs", "fsync"])
def test_commit_batch_delivers_each_message_and_fails_only_the_bad_one(tmp_path, use_syncfs):
    spool = tmp_path / "spool"
    store = MaildirStore(tmp_path / "mail", "mx.example.com")
    router = MessageRouter(store, QueueSpool(tmp_path / "queue"), use_syncfs=use_syncfs)
    good = [_incoming(spool, f"Subject: {n}\r\n\r\nbody {n}\r\n".encode()) for n in range(3)]
    bad = _incoming(spool, b"Subject: dropped\r\n\r\n")
    bad.discard()  # the client went away: finalize() refuses it
    jobs = [
        (good[0], Envelope("a@remote.example", mailboxes=["bob@example.com"]), "id0"),
        (bad, Envelope("a@remote.example", mailboxes=["bob@example.com"]), "id-bad"),
        (
            good[1],
            Envelope("a@remote.example", mailboxes=["bob@example.com", "ann@example.com"]),
            "id1",
        ),
        (good[2], Envelope("a@remote.example", mailboxes=["ann@example.com"]), "id2"),
    ]
    results = router.commit_batch(jobs)
    assert isinstance(results[1], RuntimeError)
    assert [len(r.maildir_keys) for r in results if isinstance(r, CommitResult)] == [1, 2, 1]
    bob = sorted((store.new_dir("bob@example.com")).iterdir())
    ann = sorted((store.new_dir("ann@example.com")).iterdir())
    assert sorted(p.read_bytes() for p in bob) == [
        b"Subject: 0\r\n\r\nbody 0\r\n",
        b"Subject: 1\r\n\r\nbody 1\r\n",
    ]
    assert sorted(p.read_bytes() for p in ann) == [
        b"Subject: 1\r\n\r\nbody 1\r\n",
        b"Subject: 2\r\n\r\nbody 2\r\n",
    ]
    assert list(spool.iterdir()) == []  # every spool name removed, the good ones' and the bad


def test_sync_paths_reports_a_missing_path(tmp_path):
    present = tmp_path / "present"
    present.write_bytes(b"x")
    sync_paths(files=[present], directories=[tmp_path], use_syncfs=False)
    with pytest.raises(FileNotFoundError):
        sync_paths(files=[tmp_path / "gone"], use_syncfs=False)
    with pytest.raises(FileNotFoundError):
        sync_paths(directories=[tmp_path / "gone"], use_syncfs=True)


@pytest.mark.skipif(not os.uname().sysname == "Linux", reason="glibc's malloc_trim")
def test_free_memory_is_released_on_linux():
    assert release_free_memory() is True


def test_a_failed_sync_of_the_maildirs_takes_the_whole_delivery_back(tmp_path, monkeypatch):
    """Local and remote recipients: the queue entry is durable before the new/ directories are
    synced; if that sync fails the client hears 451 and sends again, so the first attempt must
    leave neither a queue entry (a second relayed copy) nor a local copy (issue 15)."""
    import mailsuite.smtp.delivery as delivery

    spool = tmp_path / "spool"
    store = MaildirStore(tmp_path / "mail", "mx.example.com")
    queue = QueueSpool(tmp_path / "queue")
    router = MessageRouter(store, queue, use_syncfs=False)

    def failing_sync(files=(), directories=(), use_syncfs=True):
        if directories:
            raise OSError(5, "Input/output error (injected)")
        return sync_paths(files=files, directories=directories, use_syncfs=use_syncfs)

    def job(n: int):
        envelope = Envelope("a@example.com", mailboxes=["bob@example.com"])
        envelope.add_remote("carol@remote.example")
        return (_incoming(spool, b"Subject: both\r\n\r\nbody\r\n"), envelope, f"id{n}")

    monkeypatch.setattr(delivery, "sync_paths", failing_sync)
    [failed] = router.commit_batch([job(1), job(2)])[:1]
    assert isinstance(failed, OSError)
    assert queue.list_ids() == []
    assert list(store.new_dir("bob@example.com").iterdir()) == []

    monkeypatch.setattr(delivery, "sync_paths", sync_paths)
    [retried] = router.commit_batch([job(3)])
    assert isinstance(retried, CommitResult) and retried.queue_id in queue.list_ids()
    assert len(list(store.new_dir("bob@example.com").iterdir())) == 1
