"""The persistent index of one Maildir folder: UIDs, flags, MODSEQs and cached message facts.

One SQLite file per folder, ``mailsuite-index.sqlite`` inside the folder's directory (next to
tmp/new/cur, where Maildir tools do not look). Per folder rather than per user because the
index then travels with its folder: RENAME is one directory rename, DELETE one tree removal,
a damaged file costs one folder a new UIDVALIDITY, and sessions on different folders never
contend for one database lock.

A message's identity is its Maildir base name (the file name up to ``:2,``), so the MDA, POP3 and
external tools can add, rename (flags) and unlink files at any time: ``sync()`` scans new/ and
cur/ (only when a directory's mtime moved), gives unknown files fresh UIDs, turns renamed files
into flag changes and vanished ones into expunges. System flags are mirrored in the file name
(``:2,DFPRST``); keywords live only in the index.

All methods are blocking and thread-safe (one lock per folder): call them from worker threads.
The small per-message columns are mirrored in memory, so a 10,000-message SELECT or FETCH FLAGS
costs no SQL; header blocks, envelopes and part trees are cached in SQLite and parsed once.

First contact is cheap, as in Dovecot: a file found by ``sync()`` is indexed from its name and
one stat (size from ``,W=``/``,S=``, see ``file_facts``; flags from ``:2,``; INTERNALDATE from
the mtime), its header block and envelope are left NULL, and the first reader that needs them
(FETCH ENVELOPE / header sections, SEARCH) parses them for its whole batch and stores them in
the ``cache`` table, apart from the small per-message columns (schema version 3). A message is
"parsed" once its cache row has ``envwire`` or ``envelope`` (the JSON form, which older versions
always wrote and lazy parsing skips); ``header`` stays NULL for a parsed message only when its
header block is too big to cache.

The package, one job per module:

- folder.py: ``FolderIndex``: opening, loading, ``settle``, records, status, the lock;
- schema.py: the file's schema as ordered migrations (``PRAGMA user_version``);
- scan.py: keeping in step with the directory (``sync``);
- cache.py: the parsed columns (header blocks, envelopes, structure) and the memo;
- changes.py: STORE, EXPUNGE and the MODSEQ history (CONDSTORE/QRESYNC);
- adding.py: APPEND, COPY and moving a folder's messages;
- registry.py: one ``FolderIndex`` per folder in the process (``IndexRegistry``);
- records.py, files.py, uidvalidity.py: what the index hands out, message files, UIDVALIDITY.

The Maildir file-name codec (flag letters, sizes in names) is ``mailsuite.store.names``.
"""

from mailsuite.store.index.cache import MEMO_KINDS
from mailsuite.store.index.changes import MAX_EXPUNGED_KEPT, merge_ranges
from mailsuite.store.index.files import (
    MAX_CACHED_HEADER,
    canonical_size,
    file_facts,
    read_header_block,
    to_crlf,
)
from mailsuite.store.index.folder import FolderIndex
from mailsuite.store.index.records import Expunged, FolderGone, Record, Status
from mailsuite.store.index.registry import IndexRegistry
from mailsuite.store.index.schema import INDEX_FILE, SCHEMA_VERSION
from mailsuite.store.index.uidvalidity import (
    UIDVALIDITY_HINT,
    next_uidvalidity,
    uidvalidity_mark,
)

__all__ = [
    "INDEX_FILE",
    "MAX_CACHED_HEADER",
    "MAX_EXPUNGED_KEPT",
    "MEMO_KINDS",
    "SCHEMA_VERSION",
    "UIDVALIDITY_HINT",
    "Expunged",
    "FolderGone",
    "FolderIndex",
    "IndexRegistry",
    "Record",
    "Status",
    "canonical_size",
    "file_facts",
    "merge_ranges",
    "next_uidvalidity",
    "read_header_block",
    "to_crlf",
    "uidvalidity_mark",
]
