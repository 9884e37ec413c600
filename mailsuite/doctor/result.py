"""One item of the checklist: what was checked, how it went, and what to do about it.

The three statuses map onto what an operator must do: ``pass`` nothing, ``warn`` something worth
a look that does not stop mail, ``fail`` mail (or part of it) does not work until fixed.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass

PASS, WARN, FAIL = "pass", "warn", "fail"
STATUSES = (PASS, WARN, FAIL)


@dataclass(frozen=True)
class CheckResult:
    check: str  # a stable name: "mx example.com", "listener smtp 0.0.0.0:25", ...
    status: str  # pass | warn | fail
    detail: str  # what was found, one line
    fix: str = ""  # what to do, one line ("" when there is nothing to do)

    def as_dict(self) -> dict[str, str]:
        return asdict(self)

    def line(self) -> str:
        """The text form: status, name, finding and (unless it passed) the fix, on one line."""
        text = f"{self.status.upper():<4}  {self.check}: {self.detail}"
        if self.fix and self.status != PASS:
            text += f"  -> fix: {self.fix}"
        return " ".join(text.split("\n"))


def passed(check: str, detail: str) -> CheckResult:
    return CheckResult(check, PASS, detail)


def warned(check: str, detail: str, fix: str) -> CheckResult:
    return CheckResult(check, WARN, detail, fix)


def failed(check: str, detail: str, fix: str) -> CheckResult:
    return CheckResult(check, FAIL, detail, fix)


def tally(results: list[CheckResult]) -> Counter[str]:
    """How many items have each status."""
    return Counter(result.status for result in results)
