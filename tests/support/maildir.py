"""Messages put straight into a Maildir, as an MDA (ours or another program) would have."""

from __future__ import annotations

from pathlib import Path


def put_message(suite, address: str, data: bytes, subdir: str = "new", flags: str = "") -> str:
    """Drop a message file straight into the Maildir, as the MDA would; returns its base name.

    Not fsync'ed (tests do not crash the machine); named by the store like real deliveries when
    our MDA could have written ``data`` (CRLF line ends only, ending with one), else like a file
    delivered by another program (Courier's form), whose ,S= says nothing about CRLF.
    """
    store = suite.service.store
    root = store.ensure_maildir(address)
    base = store.unique_name(len(data))
    if not mda_could_write(data):
        base = base.replace("Q", "V1I", 1)
    name = base if subdir == "new" else f"{base}:2,{flags}"
    (root / subdir / name).write_bytes(data)
    return base


def mda_could_write(data: bytes) -> bool:
    """Could our MDA have written ``data``: CRLF line ends only, and a final one (or empty)?"""
    crlf = data.count(b"\r\n")
    ends = not data or data.endswith(b"\r\n")
    return ends and data.count(b"\n") == crlf and data.count(b"\r") == crlf


def maildir_files(suite, address: str) -> dict[str, list[str]]:
    """The file names in ``address``'s INBOX Maildir, sorted, by subdirectory (new, cur)."""
    root: Path = suite.maildir(address)
    return {
        sub: sorted(p.name for p in (root / sub).iterdir()) if (root / sub).is_dir() else []
        for sub in ("new", "cur")
    }
