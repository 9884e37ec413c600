"""AccountService and the twisted.cred checker/realm, on the real reactor.

The reactor runs in a background thread (the session fixture ``reactor_thread`` of
tests/conftest.py); each test drives it with ``reactor_thread.call``, which waits for the Deferred
and raises its failure.
"""

import pytest
from passlib.hash import argon2
from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import IUsernamePassword, UsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.mail.imap4 import PLAINCredentials
from twisted.mail.smtp import LOGINCredentials
from twisted.python.threadable import isInIOThread
from twisted.python.threadpool import ThreadPool
from zope.interface import Interface, implementer
from zope.interface.verify import verifyObject

from mailsuite.accounts.addresses import AddressError
from mailsuite.accounts.cred import IMailUser, MailRealm, UserDatabaseChecker, make_portal
from mailsuite.accounts.database import (
    DatabaseClosed,
    MailboxDisabled,
    Resolution,
    SQLiteUserDatabase,
)
from mailsuite.accounts.passwords import hash_password, verify_password
from mailsuite.accounts.service import AccountService


class _RecordingDatabase:
    """Passes calls through to the real database, counting those made on the reactor thread."""

    def __init__(self, db):
        self._db = db
        self.calls = 0
        self.calls_in_reactor_thread = 0

    def __getattr__(self, name):
        method = getattr(self._db, name)
        if name == "generation":
            return method  # two stat() calls, meant for the reactor thread (the cache's token)

        def call(*args):
            self.calls += 1
            self.calls_in_reactor_thread += isInIOThread()
            return method(*args)

        return call


@pytest.fixture
def db(tmp_path):
    database = SQLiteUserDatabase(tmp_path / "mailsuite.db")
    database.add_domain("example.com")
    database.add_user("bob@example.com", hash_password("secret"))
    database.add_user("dis@example.com", hash_password("secret"))
    database.set_enabled("dis@example.com", False)
    yield database
    database.close()


@pytest.fixture
def pool():
    threads = ThreadPool(minthreads=1, maxthreads=2, name="test-accounts")
    threads.start()
    yield threads
    threads.stop()


@pytest.fixture
def recorder(db):
    return _RecordingDatabase(db)


@pytest.fixture
def accounts(recorder, pool, reactor_thread):
    return AccountService(recorder, pool)


@pytest.fixture
def login(accounts, reactor_thread):
    """login(credentials) -> avatar address, or raises the login failure."""
    portal = make_portal(accounts)

    def run(credentials):
        interface, avatar, logout = reactor_thread.call(portal.login, credentials, None, IMailUser)
        assert interface is IMailUser
        assert verifyObject(IMailUser, avatar)
        logout()
        return avatar.address

    return run


# --- checker -------------------------------------------------------------------------------------


def test_good_password(login):
    assert login(UsernamePassword(b"bob@example.com", b"secret")) == "bob@example.com"


def test_username_is_normalized_and_str_credentials_work(login):
    assert login(UsernamePassword("Bob@EXAMPLE.com", "secret")) == "bob@example.com"


def test_plain_and_login_credentials(login):
    plain = PLAINCredentials()
    plain.setResponse(b"\0bob@example.com\0secret")
    assert login(plain) == "bob@example.com"
    credentials = LOGINCredentials()
    credentials.setResponse(b"bob@example.com")
    credentials.setResponse(b"secret")
    assert login(credentials) == "bob@example.com"


def test_wrong_password(login):
    with pytest.raises(UnauthorizedLogin):
        login(UsernamePassword(b"bob@example.com", b"wrong"))


def test_unknown_user(login):
    with pytest.raises(UnauthorizedLogin):
        login(UsernamePassword(b"nobody@example.com", b"secret"))


@pytest.mark.parametrize("name", [b"bob", b"../x@example.com", b"", b"\xff@example.com"])
def test_malformed_username(login, name):
    with pytest.raises(UnauthorizedLogin):
        login(UsernamePassword(name, b"secret"))


def test_disabled_user(login):
    with pytest.raises(UnauthorizedLogin):
        login(UsernamePassword(b"dis@example.com", b"secret"))


def test_outdated_hash_is_upgraded_on_login(db, login):
    old = argon2.using(type="ID", memory_cost=1024, time_cost=1).hash("secret")
    db.set_password_hash("bob@example.com", old)
    assert login(UsernamePassword(b"bob@example.com", b"secret")) == "bob@example.com"
    stored = db.get_user("bob@example.com").password_hash
    assert stored != old
    assert verify_password("secret", stored) == (True, None)


def test_bcrypt_hash_is_upgraded_to_argon2_on_login(db, login):
    pytest.importorskip("bcrypt", reason="passlib's bcrypt needs the 'bcrypt' package")
    from passlib.hash import bcrypt

    old = bcrypt.using(rounds=4).hash("secret")
    db.set_password_hash("bob@example.com", old)
    with pytest.raises(UnauthorizedLogin):
        login(UsernamePassword(b"bob@example.com", b"wrong"))
    assert db.get_user("bob@example.com").password_hash == old
    assert login(UsernamePassword(b"bob@example.com", b"secret")) == "bob@example.com"
    assert db.get_user("bob@example.com").password_hash.startswith("$argon2id$")
    assert login(UsernamePassword(b"bob@example.com", b"secret")) == "bob@example.com"


def test_database_failure_is_not_a_wrong_password(db, login):
    db.close()
    with pytest.raises(DatabaseClosed):
        login(UsernamePassword(b"bob@example.com", b"secret"))


def test_database_work_runs_off_the_reactor_thread(login, accounts, recorder, reactor_thread):
    login(UsernamePassword(b"bob@example.com", b"secret"))
    login(UsernamePassword(b"bob@example.com", b"secret"))
    reactor_thread.call(accounts.resolve_recipient, "bob@example.com")
    assert recorder.calls >= 2
    assert recorder.calls_in_reactor_thread == 0


def test_checker_declares_username_password(accounts):
    checker = UserDatabaseChecker(accounts)
    assert verifyObject(ICredentialsChecker, checker)
    assert checker.credentialInterfaces == (IUsernamePassword,)


# --- AccountService lookups ----------------------------------------------------------------------


def test_resolve_recipient(db, accounts, reactor_thread):
    db.add_alias("team@example.com", "bob@example.com")
    db.add_alias("team@example.com", "ext@example.org")
    resolve = accounts.resolve_recipient
    assert reactor_thread.call(resolve, "TEAM@example.com") == Resolution(
        ("bob@example.com",), ("ext@example.org",)
    )
    assert reactor_thread.call(resolve, "nobody@example.com") is None
    with pytest.raises(MailboxDisabled):
        reactor_thread.call(resolve, "dis@example.com")
    with pytest.raises(AddressError):
        reactor_thread.call(resolve, "a..b@example.com")


def test_is_local_domain_and_owns_address(db, accounts, reactor_thread):
    assert reactor_thread.call(accounts.is_local_domain, "EXAMPLE.com") is True
    assert reactor_thread.call(accounts.is_local_domain, "example.org") is False
    assert reactor_thread.call(accounts.is_local_domain, "a..b") is False
    db.add_alias("sales@example.com", "bob@example.com")
    owns = accounts.owns_address
    assert reactor_thread.call(owns, "bob@example.com", "sales@example.com") is True
    assert reactor_thread.call(owns, "bob@example.com", "dis@example.com") is False


def test_changes_are_seen_without_restart(db, accounts, reactor_thread):
    assert reactor_thread.call(accounts.authenticate, "bob@example.com", "secret") == (
        "bob@example.com"
    )
    db.set_enabled("bob@example.com", False)
    assert reactor_thread.call(accounts.authenticate, "bob@example.com", "secret") is None


def test_default_thread_pool_is_the_reactors(db, reactor_thread):
    accounts = reactor_thread.call(AccountService, db)
    authenticate = accounts.authenticate
    assert reactor_thread.call(authenticate, "bob@example.com", "secret") == "bob@example.com"
    assert reactor_thread.call(authenticate, "bob@example.com", "nope") is None


# --- realm ---------------------------------------------------------------------------------------


class IOther(Interface):
    pass


def test_realm_refuses_unknown_interfaces():
    with pytest.raises(NotImplementedError):
        MailRealm().requestAvatar("bob@example.com", None, IOther)


def test_realm_extension_with_one_entry():
    logged_out = []

    @implementer(IOther)
    class Other:
        def __init__(self, address):
            self.address = address

        def logout(self):
            logged_out.append(self.address)

    realm = MailRealm({IOther: Other})
    interface, avatar, logout = realm.requestAvatar(b"bob@example.com", None, IOther)
    assert interface is IOther
    assert avatar.address == "bob@example.com"
    logout()
    assert logged_out == ["bob@example.com"]
    interface, avatar, _ = realm.requestAvatar("bob@example.com", None, IOther, IMailUser)
    assert interface is IOther
    interface, avatar, _ = realm.requestAvatar("bob@example.com", None, IMailUser)
    assert (interface, avatar.address) == (IMailUser, "bob@example.com")
