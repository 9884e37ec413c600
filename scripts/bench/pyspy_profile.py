"""Sampling profile of a running server with py-spy, and a plain-text summary of where the
time goes, so a reader can choose levers without opening a flame graph.

Two views: "wall" samples every thread that is not idle, so a worker blocked in fsync counts
(where the latency goes); "gil" samples only the thread holding the GIL (where the Python CPU
goes: the work that competes for the one interpreter).

Usage as a script: python pyspy_profile.py RAW_FILE  (summarises an earlier ``py-spy -f raw``).
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

_LINE = re.compile(r"^(?P<stack>.*) (?P<count>\d+)$")
_FRAME = re.compile(r"^(?P<name>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")
_ROOTS = ("mailsuite", "twisted", "OpenSSL", "passlib", "argon2")


def record(
    pyspy: Path,
    pid: int,
    seconds: int,
    output: Path,
    fmt: str = "raw",
    gil_only: bool = False,
    rate: int = 100,
) -> None:
    """Sample ``pid`` for ``seconds``; ``fmt`` is "raw" (folded stacks) or "flamegraph" (SVG)."""
    args = [str(pyspy), "record", "--pid", str(pid), "--duration", str(seconds)]
    args += ["--rate", str(rate), "--format", fmt, "--threads", "--nonblocking"]
    args += ["--output", str(output)] + (["--gil"] if gil_only else [])
    subprocess.run(args, check=True, capture_output=True, timeout=seconds + 60)


def _function(frame: str) -> str:
    """``name (/long/path/mailsuite/store/x.py:12)`` -> ``name (mailsuite/store/x.py)``."""
    match = _FRAME.match(frame)
    if not match:
        return frame
    parts = Path(match["file"]).parts
    for root in _ROOTS:
        if root in parts:
            return f"{match['name']} ({'/'.join(parts[parts.index(root) :])})"
    return f"{match['name']} ({Path(match['file']).name})"


def _thread_kind(name: str) -> str:
    if "MainThread" in name:
        return "reactor (main thread)"
    if "PoolThread" in name:
        return "thread pool"
    return "other threads"


def summarise(raw: Path, top: int = 15) -> dict:
    total = 0
    threads: Counter[str] = Counter()
    self_time: Counter[str] = Counter()
    reactor_self: Counter[str] = Counter()
    ours: Counter[str] = Counter()
    for line in raw.read_text(errors="replace").splitlines():
        match = _LINE.match(line)
        if not match:
            continue
        count = int(match["count"])
        frames = match["stack"].split(";")
        kind = _thread_kind(frames[0])
        functions = [_function(frame) for frame in frames[1:]] or ["(no Python frame)"]
        total += count
        threads[kind] += count
        self_time[functions[-1]] += count
        if kind.startswith("reactor"):
            reactor_self[functions[-1]] += count
        for function in set(functions):
            if "(mailsuite/" in function:
                ours[function] += count

    def share(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(name, 100.0 * n / total) for name, n in counter.most_common(top)] if total else []

    return {
        "samples": total,
        "threads": share(threads),
        "self": share(self_time),
        "reactor_self": share(reactor_self),
        "mailsuite_inclusive": share(ours),
    }


def summary_text(summary: dict) -> str:
    out = [f"{summary['samples']} samples; percentages of all samples"]
    for title, key in (
        ("by thread", "threads"),
        ("self time, top functions", "self"),
        ("self time on the reactor thread", "reactor_self"),
        ("mailsuite functions, inclusive (with what they call)", "mailsuite_inclusive"),
    ):
        out.append(f"  {title}:")
        out += [f"    {pct:5.1f}%  {name}" for name, pct in summary[key]]
    return "\n".join(out)


if __name__ == "__main__":
    print(summary_text(summarise(Path(sys.argv[1]))))
