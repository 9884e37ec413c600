"""The store seam: the Maildir implementation provides what IMAP and POP3 may ask, and the cred
realm hands each protocol its own view of the user's mail."""

from __future__ import annotations

from zope.interface.verify import verifyClass, verifyObject

from mailsuite.accounts.cred import IMailUser, MailRealm
from mailsuite.store.accounts import MaildirAccount, MaildirAccounts
from mailsuite.store.folders import UserFolders
from mailsuite.store.index import FolderIndex
from mailsuite.store.interfaces import IFolderIndex, IFolders, IMailAccount, IMaildropAccount
from mailsuite.store.maildir import MaildirStore


def test_the_maildir_store_provides_the_interfaces(tmp_path):
    assert verifyClass(IFolderIndex, FolderIndex)
    assert verifyClass(IFolders, UserFolders)
    account = MaildirAccounts(MaildirStore(tmp_path, "mx.test"))("alice@example.com")
    assert verifyObject(IMailAccount, account)
    assert verifyObject(IMaildropAccount, account)


def test_the_realm_hands_each_protocol_its_avatar(tmp_path):
    avatars = MaildirAccounts(MaildirStore(tmp_path, "mx.test"))
    realm = MailRealm({IMailAccount: avatars, IMaildropAccount: avatars})
    for interface in (IMailAccount, IMaildropAccount):
        given, avatar, logout = realm.requestAvatar(b"bob@example.com", None, interface)
        assert given is interface and isinstance(avatar, MaildirAccount)
        assert avatar.address == "bob@example.com"
        logout()
    given, avatar, _ = realm.requestAvatar(b"bob@example.com", None, IMailUser)
    assert given is IMailUser and avatar.address == "bob@example.com"


def test_an_account_reads_its_own_maildir_only(tmp_path):
    store = MaildirStore(tmp_path, "mx.test")
    avatars = MaildirAccounts(store)
    alice = avatars("alice@example.com")
    alice.folders.ensure_defaults()
    assert alice.folders.root == store.maildir_path("alice@example.com")
    assert alice.maildrop().messages == []
    index = alice.index(alice.folders.path("Sent"))
    assert index is avatars("alice@example.com").index(alice.folders.path("Sent"))
