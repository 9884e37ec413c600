"""Reading and writing message files for the index: header blocks, CRLF sizes, copies.

RFC822.SIZE and every byte offset the index hands out count CRLF line ends (RFC 3501 §2.3.4),
whatever the file holds; a file with bare LF is converted on the way (``to_crlf``).
"""

from __future__ import annotations

import mmap
import os
from pathlib import Path
from typing import Any

from mailsuite.store import mime
from mailsuite.store.names import crlf_size_from_name, name_sizes

MAX_CACHED_HEADER = 64 * 1024
_FIRST_READ = 8192  # most header blocks end within it


def read_header_block(path: Path | str, crlf: bool | None = None) -> tuple[bytes, bool]:
    """The header block (CRLF form, up to MAX_CACHED_HEADER) and whether the file uses CRLF
    line ends (``crlf`` when the caller knows; else the first line end decides, as the index
    always has). FileNotFoundError if the file is gone.

    A bare ``os.read`` of the first 8 KB, where most header blocks end: a folder's first FETCH
    ENVELOPE does this for every message, and Python file objects would double its cost.
    """
    head = _read_head(path)
    if crlf is None:
        crlf = _crlf(head)
    if not crlf:
        head = to_crlf(head)
    end = mime.header_block_end(head, 0, len(head))
    return head[:end], crlf


def _read_head(path: Path | str) -> bytes:
    """The first 8 KB, or up to MAX_CACHED_HEADER if the header block goes on past them."""
    fd = os.open(path, os.O_RDONLY)
    try:
        head = os.read(fd, _FIRST_READ)
        if len(head) == _FIRST_READ and b"\n\r\n" not in head and b"\n\n" not in head:
            while len(head) < MAX_CACHED_HEADER and (
                more := os.read(fd, MAX_CACHED_HEADER - len(head))
            ):
                head += more
    finally:
        os.close(fd)
    return head


def _crlf(head: bytes) -> bool:
    """Does the file use CRLF line ends? Its first line end decides (no line end: yes)."""
    first_nl = head.find(b"\n")
    return first_nl < 0 or head[first_nl - 1 : first_nl] == b"\r"


def file_facts(path: str, key: str) -> tuple[float, int | None, bool] | None:
    """(mtime, RFC822.SIZE, CRLF-only?) of a message file, from one stat and its name if it
    can: None if the file is gone.

    RFC822.SIZE counts CRLF line ends (RFC 3501 §2.3.4). ``,W=`` is that size by Dovecot's
    convention, and the file holds no bare LF exactly when its size on disk is the same; a
    file our MDA delivered (``names.crlf_size_from_name``) is CRLF-only. Only files the name
    says nothing useful about are read, and only their start: the first line end decides.
    The size of a bare-LF file (what mbsync, getmail and many migrations leave, names with
    ``,S=`` but no ``,W=``) is left None, to be counted when a client asks for it
    (``fill_sizes``): counting every line end of a 10,000-message folder made its first SELECT
    take seconds.
    """
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return None
    size = stat.st_size
    _s, w = name_sizes(key)
    if w is not None and w >= size:  # smaller would be a name that lies: measure instead
        return stat.st_mtime, w, w == size
    if crlf_size_from_name(key) == size:
        return stat.st_mtime, size, True
    try:
        crlf = _crlf(_read_head(path))  # the header block itself is parsed later, if asked
        return stat.st_mtime, size if crlf else None, crlf
    except FileNotFoundError:
        return None


def to_crlf(data: bytes) -> bytes:
    """Every bare LF made CRLF, CRLF kept: two replaces in C (a look-behind regex was ~50
    times slower and made the first look at a folder of bare-LF files take seconds)."""
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def canonical_size(path: Path | str) -> int:
    """Size of a bare-LF file once every line end is CRLF (counted in chunks)."""
    size = 0
    previous = b""
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            size += len(chunk) + chunk.count(b"\n") - chunk.count(b"\r\n")
            if previous == b"\r" and chunk[:1] == b"\n":
                size -= 1
            previous = chunk[-1:]
    return size


def copy_synced(source: Path, target: Path) -> None:
    with open(source, "rb") as src, open(target, "xb") as dst:
        while chunk := src.read(1 << 20):
            dst.write(chunk)
        dst.flush()
        os.fsync(dst.fileno())


def close_content(data: Any) -> None:
    """Close what ``FolderIndex.content`` returned, if it is an mmap."""
    if isinstance(data, mmap.mmap):
        data.close()
