"""What IMAP and POP3 may ask of the mail store: the seam a second store would plug into.

The protocols never construct store classes: at login the cred realm hands IMAP an
``IMailAccount`` and POP3 an ``IMaildropAccount`` (service.py wires the Maildir implementation,
mailsuite/store/accounts.py). Everything here is blocking: call it from worker threads.
"""

from __future__ import annotations

from zope.interface import Attribute, Interface


class IFolders(Interface):
    """A user's folder tree (IMAP names, "/" as separator, INBOX case-insensitive)."""

    root = Attribute("Where INBOX lives (the key the folder hub uses).")

    def path(name):
        """The location of folder ``name``; FolderNameError for a name the store refuses."""

    def exists(name):
        """Is there a selectable folder ``name``?"""

    def list():
        """Every folder, as FolderInfo (name, selectable, has_children, special_use)."""

    def ensure_defaults():
        """Create the special-use folders (Sent, Drafts, Trash, Junk, Archive) if missing."""

    def create(name):
        """FolderExists, FolderNameError or FolderError when it cannot be made."""

    def delete(name):
        """FolderNotFound, FolderError (INBOX, a folder with children that is not selectable)."""

    def rename(old, new):
        """Rename a folder and its children; returns [(old name, new name)] of each moved."""

    def subscriptions():
        """Subscribed folder names."""

    def subscribe(name):
        """Add ``name`` to the subscriptions."""

    def unsubscribe(name):
        """Remove ``name`` from the subscriptions."""


class IFolderIndex(Interface):
    """One folder's messages as IMAP sees them: UIDs, flags, MODSEQs and cached message facts.

    One instance per folder in the process (``IMailAccount.index``), thread-safe; records are
    immutable (uid, key, name, flags, modseq, internaldate, size, crlf) tuples.
    """

    path = Attribute("The folder's location (the key the folder hub uses).")
    uidvalidity = Attribute("The folder's UIDVALIDITY.")
    keywords = Attribute("Every keyword a message here has had (only grows).")
    lock = Attribute("Hold it to read several things as one snapshot.")
    unwritten = Attribute("True while the index of a folder met for the first time is unsaved.")

    def settle():
        """Save an index that so far lives only in memory (after SELECT has answered)."""

    def exists():
        """Is the folder still there?"""

    def sync(force=False):
        """Pick up what other programs added, renamed or removed; True if anything changed."""

    def needs_sync():
        """Has the folder changed on disk since the last sync (cheap)?"""

    def status():
        """Status: messages, recent, uidnext, uidvalidity, unseen, highestmodseq."""

    def records():
        """Every message, by ascending UID."""

    def uid_array():
        """The UIDs, ascending (shared: copy before changing it)."""

    def get(uid):
        """The record of ``uid``, or None once expunged."""

    def claim_recent(claim=True):
        """The range of UIDs that are \\Recent for the caller (claimed when ``claim``)."""

    def changes_since(modseq, known=()):
        """(records changed after ``modseq``, UIDs expunged after it, highest modseq)."""

    def vanished_since(modseq, ranges):
        """QRESYNC: UID ranges within ``ranges`` expunged after ``modseq``."""

    def expunged_floor():
        """Expunges up to this MODSEQ may have been pruned from the history."""

    def store_flags(uids, mode, flags, unchanged_since=None):
        """Apply +/-/= flags: (records changed, UIDs refused by UNCHANGEDSINCE)."""

    def expunge(uids=None, only_deleted=True):
        """Remove \\Deleted messages (of ``uids``); the UIDs removed."""

    def expunge_at(uids=None, only_deleted=True):
        """Like expunge, with the expunge's MODSEQ."""

    def add_file(source, flags=(), internaldate=None, cached=None):
        """Add a durable file as a new message (APPEND, COPY); its record."""

    def copy_to(target, uids):
        """Copy messages into another folder's index: [(source uid, target uid)]."""

    def move_all_to(target):
        """Move every message into ``target`` (RENAME INBOX): [(source uid, target uid)]."""

    def fill_internaldates(uids):
        """Make sure those records carry their INTERNALDATE."""

    def fill_sizes(uids):
        """Make sure those records carry their RFC822.SIZE."""

    def file_path(record):
        """Where the message's file is now."""

    def content(record):
        """The message in CRLF form (an mmap to close, or bytes); FileNotFoundError if gone."""

    def open_message(record):
        """An open binary file of a CRLF message."""

    def header(uid):
        """The message's header block (CRLF, with its blank line)."""

    def headers(uids):
        """Cached header blocks of many messages."""

    def envelope(uid):
        """The ENVELOPE as plain data."""

    def envelopes_wire(uids):
        """ENVELOPEs as IMAP bytes, of many messages."""

    def structure(uid):
        """The MIME part tree with byte offsets into the CRLF message."""

    def memo(kind):
        """A per-folder memo (UID -> bytes) for values computed from message content."""


class IMailAccount(Interface):
    """IMAP's avatar: an authenticated user's folders and their indexes."""

    address = Attribute("The user's canonical address.")
    folders = Attribute("The user's IFolders.")

    def index(path):
        """The IFolderIndex of the folder at ``path`` (one instance per folder per process)."""

    def forget(path):
        """The folder at ``path`` was deleted or renamed away: drop its index."""


class IMaildropAccount(Interface):
    """POP3's avatar: an authenticated user's INBOX as a maildrop."""

    address = Attribute("The user's canonical address.")

    def maildrop():
        """A snapshot of the INBOX (Maildrop); ValueError if the address has no place here."""
