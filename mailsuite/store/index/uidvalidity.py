"""UIDVALIDITY values that never repeat for a folder, even across a lost index."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from pathlib import Path

UIDVALIDITY_HINT = "mailsuite-uidvalidity"
_uidvalidity_lock = threading.Lock()


def uidvalidity_mark(folder: Path) -> Path:
    """The file holding the highest UIDVALIDITY given to any folder of a Maildir++ root: in
    the root itself (INBOX's directory; other folders are its ``.Name`` children)."""
    folder = Path(folder)
    root = folder.parent if folder.name.startswith(".") else folder
    return root / UIDVALIDITY_HINT


def next_uidvalidity(mark: Path, *older: Path) -> int:
    """A UIDVALIDITY above the clock's seconds and above every value ``mark`` (and the
    per-folder ``older`` hints of earlier versions) recorded; recorded in ``mark`` before it is
    returned (written to a temporary file and renamed over, so a crash leaves the old or the
    new value, never a torn one)."""
    with _uidvalidity_lock:
        previous = 0
        for path in (mark, *older):
            with contextlib.suppress(OSError, ValueError):
                previous = max(previous, int(path.read_text().strip()))
        value = max(int(time.time()), previous + 1) & 0xFFFFFFFF or 1
        with contextlib.suppress(OSError):
            temporary = mark.with_name(f"{mark.name}.{os.getpid()}.{threading.get_ident()}")
            temporary.write_text(f"{value}\n")
            os.replace(temporary, mark)
        return value
