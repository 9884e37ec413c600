"""Run checks in a small thread pool, each bounded, none able to hang or crash the run.

Every check already bounds its own network steps; the pool adds one deadline for the whole
run, so a check that somehow blocks longer is reported as a failure instead of waiting. A check
that raises (a bug) becomes a failed item too: the rest of the checklist still prints.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any

from mailsuite.doctor.result import CheckResult, failed

WORKERS = 8  # enough to overlap the waits on the network, few enough for a small host
RUN_DEADLINE = 60.0  # seconds for the whole checklist (SPF alone may take 20, RFC 7208 §4.6.4)

Check = Callable[..., list[CheckResult]]


@dataclass
class Pending:
    """A submitted check: ``results()`` waits for it (until the run's deadline)."""

    name: str
    future: Future
    deadline: float

    def results(self) -> list[CheckResult]:
        try:
            return self.future.result(timeout=max(0.0, self.deadline - time.monotonic()))
        except FutureTimeout:
            return [
                failed(
                    self.name,
                    "did not finish in time",
                    "run the check again; if it repeats, "
                    "something on the way blocks (a firewall dropping packets?)",
                )
            ]
        except Exception as exc:  # a bug in a check must not hide the other results
            return [
                failed(
                    self.name,
                    f"the check itself failed: {type(exc).__name__}: {exc}",
                    "report this as a bug of mailsuite",
                )
            ]


class CheckPool:
    def __init__(self, workers: int = WORKERS, deadline: float = RUN_DEADLINE) -> None:
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="doctor")
        self._deadline = time.monotonic() + deadline

    def submit(self, name: str, check: Check, *args: Any) -> Pending:
        return Pending(name, self._executor.submit(check, *args), self._deadline)

    def __enter__(self) -> CheckPool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        # Do not wait for a check past the deadline: its thread ends with its own timeout.
        self._executor.shutdown(wait=False, cancel_futures=True)


def collect(pending: list[Pending]) -> list[CheckResult]:
    """The results of the checks in submission order."""
    return [result for item in pending for result in item.results()]
