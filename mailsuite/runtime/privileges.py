"""Handing the data directory to the user ``twistd --uid`` runs the server as.

twistd builds the service and calls ``privilegedStartService`` as root, then switches to
``--uid``/``--gid``: the data directory, the user database, the queue, the spool, the delivery
journal and the generated certificate are all created in the root phase, and the server could
not touch them afterwards (every delivery would fail). Postfix's master hands its queue to
``mail_owner`` the same way. Maildir message files are created by the server itself after the
switch, so a Maildir subdirectory (cur/new/tmp) already owned by that user is not descended
into: a start costs one lstat per directory and top-level file, not one per message.
"""

from __future__ import annotations

import os
import pwd
from pathlib import Path
from typing import Any

_MESSAGE_DIRS = frozenset({"cur", "new", "tmp"})


def switch_target(twistd_options: Any) -> tuple[int, int] | None:
    """(uid, gid) twistd will switch to after ``privilegedStartService``, as twistd itself
    works them out (``--gid`` defaults to the user's group); None when no switch happens."""
    if twistd_options is None or os.getuid() != 0:
        return None
    uid = twistd_options.get("uid")
    gid = twistd_options.get("gid")
    if uid is None or uid == 0:
        return None
    if gid is None:
        gid = pwd.getpwuid(uid).pw_gid
    return uid, gid


def hand_over(data_dir: Path, uid: int, gid: int) -> int:
    """Give every file and directory under ``data_dir`` (and itself) to ``uid``:``gid``;
    returns how many changed owner. Symbolic links are changed themselves, never followed."""
    changed = 0

    def own(path: str, stat: os.stat_result) -> None:
        nonlocal changed
        if stat.st_uid != uid or stat.st_gid != gid:
            os.chown(path, uid, gid, follow_symlinks=False)
            changed += 1

    top = os.fspath(data_dir)
    own(top, os.lstat(top))
    for root, dirs, files in os.walk(top):
        keep = []
        for name in dirs:
            path = os.path.join(root, name)
            stat = os.lstat(path)
            settled = stat.st_uid == uid and stat.st_gid == gid
            own(path, stat)
            if not (settled and name in _MESSAGE_DIRS):
                keep.append(name)
        dirs[:] = keep
        for name in files:
            path = os.path.join(root, name)
            own(path, os.lstat(path))
    return changed
