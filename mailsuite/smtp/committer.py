"""Group commit: one thread makes accepted messages durable in batches.

Every message waiting for its ``250`` joins the next batch; the batch is synced with one journal
commit (see MessageRouter.commit_batch) and all its Deferreds fire together on the reactor. Under
load the batches grow by themselves (while one is being synced, the next one fills up), so the
disk's cost per message falls as the load rises, and one thread instead of a pool of them keeps
the GIL quiet. With a single waiting message the batch is just that message: no added delay.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence
from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger

log = Logger(namespace="mailsuite.smtp")

MAX_BATCH = 256
_STOP = object()

BatchFunction = Callable[[Sequence[Any]], Sequence[Any]]


class CommitQueue:
    """Runs ``process(jobs) -> results`` (one result or exception per job) in its own thread."""

    def __init__(
        self,
        process: BatchFunction,
        reactor: Any = None,
        name: str = "commit",
        idle: Callable[[], None] | None = None,
    ) -> None:
        """``idle()`` runs in the thread whenever it has answered a batch and no job waits."""
        if reactor is None:
            from twisted.internet import reactor
        self._process = process
        self._idle = idle
        self._reactor = reactor
        self._name = name
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, job: Any) -> Deferred:
        """Deferred firing (on the reactor thread) with the job's result, or failing with it."""
        d: Deferred = Deferred()
        self._ensure_thread()
        self._jobs.put((job, d))
        return d

    def _ensure_thread(self) -> None:
        if self._thread is not None:
            return
        with self._lock:
            if self._thread is None:
                thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                thread.start()
                self._thread = thread

    def stop(self, timeout: float = 30.0) -> None:
        """Finish the jobs already submitted, then end the thread (call from a worker thread)."""
        thread = self._thread
        if thread is None:
            return
        self._jobs.put(_STOP)
        thread.join(timeout)
        self._thread = None

    def _run(self) -> None:
        while True:
            first = self._jobs.get()
            if first is _STOP:
                self._run_idle()
                return
            batch = [first]
            stop = False
            while len(batch) < MAX_BATCH:
                try:
                    item = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stop = True
                    break
                batch.append(item)
            jobs = [job for job, _ in batch]
            try:
                results = list(self._process(jobs))
                if len(results) != len(jobs):
                    raise RuntimeError("commit batch returned a wrong number of results")
            except BaseException as exc:  # the batch as a whole failed: every job fails
                log.failure("commit batch failed")
                results = [exc] * len(jobs)
            self._reactor.callFromThread(_fire, [d for _, d in batch], results)
            if stop or self._jobs.empty():
                self._run_idle()
            if stop:
                return

    def _run_idle(self) -> None:
        if self._idle is None:
            return
        try:
            self._idle()
        except Exception:  # retried after the next batch; the work it guards is not lost
            log.failure("commit thread idle work failed")


def _fire(deferreds: list[Deferred], results: list[Any]) -> None:
    for d, result in zip(deferreds, results, strict=True):
        if isinstance(result, BaseException):
            d.errback(result)
        else:
            d.callback(result)
