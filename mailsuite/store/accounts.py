"""The Maildir store's avatars: what the cred realm hands IMAP and POP3 after a login."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from zope.interface import implementer

from mailsuite.store.folders import UserFolders
from mailsuite.store.index import FolderIndex, IndexRegistry
from mailsuite.store.interfaces import IMailAccount, IMaildropAccount
from mailsuite.store.maildir import MaildirStore
from mailsuite.store.maildrop import Maildrop, WireSizeCache


@implementer(IMailAccount, IMaildropAccount)
class MaildirAccount:
    """One user's Maildir++ tree. Built on the reactor thread at login: touches no disk."""

    def __init__(
        self, address: str, store: MaildirStore, indexes: IndexRegistry, sizes: WireSizeCache
    ) -> None:
        self.address = address
        self._store = store
        self._indexes = indexes
        self._sizes = sizes

    @cached_property
    def folders(self) -> UserFolders:
        """ValueError if the address cannot be a path in the store (validated there)."""
        return UserFolders(self._store.maildir_path(self.address))

    def index(self, path: Path) -> FolderIndex:
        return self._indexes.open(path)

    def forget(self, path: Path) -> None:
        self._indexes.forget(path)

    def maildrop(self) -> Maildrop:
        return Maildrop.scan(self._store.maildir_path(self.address), self._sizes)


class MaildirAccounts:
    """The realm's avatar factory for the Maildir store: shares one index registry and one
    cache of wire sizes among all users' avatars."""

    def __init__(self, store: MaildirStore) -> None:
        self.store = store
        self.indexes = IndexRegistry()
        self.sizes = WireSizeCache()

    def __call__(self, address: str) -> MaildirAccount:
        return MaildirAccount(address, self.store, self.indexes, self.sizes)
