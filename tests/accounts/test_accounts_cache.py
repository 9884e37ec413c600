"""AccountService's routing cache: answers come from memory while the database is unchanged, and
a change committed by another process (the admin CLI) is seen at the very next lookup."""

import os
import threading

import pytest
from twisted.python.threadpool import ThreadPool

from mailsuite.accounts import database as database_module
from mailsuite.accounts.addresses import AddressError
from mailsuite.accounts.database import MailboxDisabled, Resolution, SQLiteUserDatabase
from mailsuite.accounts.service import AccountService

HASH = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"


class _CountingDatabase:
    """The real database, counting the queries that reach it (generation() excluded)."""

    def __init__(self, db):
        self._db = db
        self.queries = 0

    def __getattr__(self, name):
        method = getattr(self._db, name)
        if name == "generation":
            return method

        def call(*args):
            self.queries += 1
            return method(*args)

        return call


@pytest.fixture
def path(tmp_path):
    return tmp_path / "users.sqlite3"


@pytest.fixture
def server_db(path):
    database = SQLiteUserDatabase(path)
    database.add_domain("example.com")
    database.add_user("bob@example.com", HASH)
    yield database
    database.close()


@pytest.fixture
def cli_db(server_db, path):
    """A second connection to the same file: what mailsuite-admin opens in its own process."""
    database = SQLiteUserDatabase(path)
    yield database
    database.close()


@pytest.fixture
def counting(server_db):
    return _CountingDatabase(server_db)


@pytest.fixture
def accounts(counting, reactor_thread):
    pool = ThreadPool(minthreads=1, maxthreads=2, name="test-cache")
    pool.start()
    yield AccountService(counting, pool)
    pool.stop()


def test_repeated_lookups_are_answered_from_the_cache(accounts, counting, reactor_thread):
    for _ in range(5):
        assert reactor_thread.call(accounts.is_local_domain, "example.com") is True
        assert reactor_thread.call(accounts.resolve_recipient, "bob@example.com") == Resolution(
            ("bob@example.com",), ()
        )
        assert reactor_thread.call(accounts.owns_address, "bob@example.com", "bob@example.com")
    assert counting.queries == 3


def test_a_user_added_by_another_process_is_found_at_once(
    accounts, cli_db, counting, reactor_thread
):
    assert reactor_thread.call(accounts.resolve_recipient, "new@example.com") is None
    cli_db.add_user("new@example.com", HASH)
    assert reactor_thread.call(accounts.resolve_recipient, "new@example.com") == Resolution(
        ("new@example.com",), ()
    )


@pytest.mark.parametrize(
    "change",
    [
        lambda db: db.set_enabled("bob@example.com", False),
        lambda db: db.delete_user("bob@example.com"),
        lambda db: db.add_alias("bob@example.com", "carol@remote.example"),
    ],
    ids=["disable", "delete", "alias"],
)
def test_changes_of_every_kind_invalidate_the_cache(accounts, cli_db, reactor_thread, change):
    before = reactor_thread.call(accounts.resolve_recipient, "bob@example.com")
    change(cli_db)
    try:
        after = reactor_thread.call(accounts.resolve_recipient, "bob@example.com")
    except MailboxDisabled:
        after = "disabled"
    assert after != before


def test_cached_failures_stay_failures(accounts, counting, reactor_thread, cli_db):
    cli_db.set_enabled("bob@example.com", False)
    for _ in range(3):
        with pytest.raises(MailboxDisabled):
            reactor_thread.call(accounts.resolve_recipient, "bob@example.com")
        with pytest.raises(AddressError):
            reactor_thread.call(accounts.resolve_recipient, "not an address")
    assert counting.queries == 2


def test_a_domain_deleted_elsewhere_stops_being_local(accounts, cli_db, reactor_thread):
    cli_db.add_domain("other.example")
    assert reactor_thread.call(accounts.is_local_domain, "other.example") is True
    cli_db.delete_domain("other.example")
    assert reactor_thread.call(accounts.is_local_domain, "other.example") is False


def test_generation_changes_with_every_committed_change(server_db, cli_db):
    seen = {server_db.generation()}
    for change in (
        lambda: cli_db.add_user("x@example.com", HASH),
        lambda: cli_db.set_password_hash("x@example.com", HASH),
        lambda: cli_db.add_alias("al@example.com", "x@example.com"),
        lambda: cli_db.delete_alias("al@example.com"),
        lambda: cli_db.delete_user("x@example.com"),
    ):
        change()
        token = server_db.generation()
        assert token not in seen
        seen.add(token)
    assert server_db.generation() == server_db.generation()  # reads change nothing
    server_db.list_users()
    assert server_db.generation() in seen


def test_the_changes_file_is_replaced_when_full(server_db, path, monkeypatch):
    monkeypatch.setattr(database_module, "_CHANGES_FILE_LIMIT", 3)
    changes = path.with_name(path.name + "-changes")
    tokens = set()
    for i in range(6):
        server_db.add_alias(f"a{i}@example.com", "bob@example.com")
        tokens.add(server_db.generation())
        assert os.stat(changes).st_size <= 4
    assert len(tokens) == 6


def test_memory_is_released_once_logins_stop(server_db, reactor_thread, monkeypatch):
    from mailsuite.accounts import service as service_module
    from mailsuite.accounts.passwords import hash_password

    released = threading.Event()
    monkeypatch.setattr(service_module, "TRIM_AFTER_IDLE", 0.05)
    monkeypatch.setattr(service_module, "release_free_memory", released.set)
    server_db.set_password_hash("bob@example.com", hash_password("secret"))
    pool = ThreadPool(minthreads=1, maxthreads=2, name="test-trim")
    pool.start()
    try:
        accounts = AccountService(server_db, pool, hash_pool=pool)
        logins = [("bob@example.com", "secret"), ("bob@example.com", "wrong")]
        results = [reactor_thread.call(accounts.authenticate, *login) for login in logins]
        assert results == ["bob@example.com", None]
        assert released.wait(5)
    finally:
        pool.stop()
