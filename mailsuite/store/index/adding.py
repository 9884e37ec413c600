"""Messages this process adds to a folder: APPEND, COPY, and moving a whole folder's messages
(RENAME INBOX). Each new file gets a name of ours (``names.NameMaker``, tag X: the bytes are the
client's, so the name vouches for no CRLF size), is hard-linked (or copied) into cur/ with its
flags in the name, fsync'ed, and indexed at once, parsed columns included.

These functions are ``FolderIndex`` methods (bound in folder.py); they take the folder's lock
as the methods always did.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mailsuite.store import mime
from mailsuite.store.index.files import (
    MAX_CACHED_HEADER,
    canonical_size,
    copy_synced,
    read_header_block,
)
from mailsuite.store.index.records import FolderGone, Record
from mailsuite.store.index.schema import INSERT_NEW
from mailsuite.store.names import (
    APPEND_TAG,
    NameMaker,
    canonical_flag,
    cur_name,
    keyword_flags,
    split_flags,
)

if TYPE_CHECKING:
    from mailsuite.store.index.folder import FolderIndex

_names = NameMaker(APPEND_TAG, os.uname().nodename)


def add_file(
    index: FolderIndex,
    source: Path,
    flags: Iterable[str] = (),
    internaldate: float | None = None,
    cached: tuple[Any, ...] | None = None,
) -> Record:
    """Hard-link (or copy) the fsync'ed file ``source`` into cur/ and index it (APPEND, COPY).

    Durable on return.
    """
    flags = frozenset(canonical_flag(f) for f in flags) - {"\\Recent"}
    size = os.stat(source).st_size
    with index._lock:
        index.sync()
        key = _names.make(size)
        name = cur_name(key, flags)
        target = index.path / name
        try:
            os.link(source, target)
        except FileNotFoundError:
            if not index.exists():
                raise FolderGone(f"no folder at {index.path}") from None
            raise
        except OSError:  # another filesystem, or no hard links there
            copy_synced(source, target)
        if internaldate is not None:
            os.utime(target, (internaldate, internaldate))
        index._fsync_cur()
        modseq = index._meta["highestmodseq"] + 1
        with index._transaction():
            record = _index_file(index, key, name, modseq, keyword_flags(flags), cached)
            index._set_meta(highestmodseq=modseq)
        index._dir_stamp = None
        if record is None:
            raise FileNotFoundError(f"{target} vanished while being added")
        return record


def _index_file(
    index: FolderIndex,
    key: str,
    name: str,
    modseq: int,
    extra_flags: Iterable[str] = (),
    cached: tuple[Any, ...] | None = None,
) -> Record | None:
    path = index.path / name
    try:
        stat = os.stat(path)
        header, crlf = read_header_block(path)
        size = stat.st_size if crlf else canonical_size(path)
    except FileNotFoundError:
        return None
    _, letters = split_flags(name)
    uid = index._meta["uidnext"]
    record = Record(
        uid=uid,
        key=key,
        name=name,
        flags=frozenset(letters | set(extra_flags)),
        modseq=modseq,
        internaldate=stat.st_mtime,
        size=size,
        crlf=crlf,
    )
    if cached is not None:
        header_blob, envelope_json, structure_json, *rest = cached
        envwire = rest[0] if rest else None
    else:
        header_blob = header if len(header) < MAX_CACHED_HEADER else None
        env = mime.envelope(mime.parse_header_fields(header))
        envelope_json = json.dumps(env)
        envwire = mime.envelope_imap(env)
        structure_json = None
    index._db.execute(
        INSERT_NEW,
        (
            uid,
            key,
            name,
            " ".join(sorted(record.flags)),
            modseq,
            record.internaldate,
            size,
            int(crlf),
        ),
    )
    if any(v is not None for v in (header_blob, envelope_json, structure_json, envwire)):
        index._db.execute(
            "INSERT OR REPLACE INTO cache (uid, header, envelope, structure, envwire)"
            " VALUES (?, ?, ?, ?, ?)",
            (uid, header_blob, envelope_json, structure_json, envwire),
        )
    index._put(record)
    index._set_meta(uidnext=uid + 1)
    return record


def copy_to(index: FolderIndex, target: FolderIndex, uids: Iterable[int]) -> list[tuple[int, int]]:
    """Copy messages (flags, keywords, internal date kept) into ``target``: (src, dst) UIDs."""
    pairs: list[tuple[int, int]] = []
    uids = list(uids)
    index.fill_internaldates(uids)  # kept on the copy even where it cannot be hard-linked
    for uid in uids:
        record = index.get(uid)
        if record is None:
            continue
        facts = index.cached_facts(uid)
        for _attempt in range(2):
            try:
                new = target.add_file(
                    index.file_path(record), record.flags, record.internaldate, facts
                )
                pairs.append((uid, new.uid))
                break
            except FolderGone:
                raise  # the target went: nothing more can be copied
            except FileNotFoundError:  # the source was renamed or expunged meanwhile
                index.sync(force=True)
                record = index.get(uid)
                if record is None:
                    break
    return pairs


def move_all_to(index: FolderIndex, target: FolderIndex) -> list[tuple[int, int]]:
    """Move every message into ``target`` (RENAME INBOX, RFC 3501 §6.3.5): (src, dst) UIDs.

    Copy then expunge, like MOVE: a message delivered meanwhile simply stays here, and a
    crash in between leaves a duplicate rather than a loss.
    """
    index.sync()
    pairs = index.copy_to(target, [record.uid for record in index.records()])
    index.expunge([src for src, _dst in pairs], only_deleted=False)
    return pairs
