"""The SQLite user database: domains, users, aliases, resolution, threads and migrations."""

import sqlite3
import stat
import threading

import pytest
from zope.interface.verify import verifyObject

from mailsuite.accounts.database import (
    AccountsError,
    AddressError,
    Alias,
    AliasExists,
    DatabaseClosed,
    DomainExists,
    DomainNotEmpty,
    IUserDatabase,
    MailboxDisabled,
    Resolution,
    SchemaTooNew,
    SQLiteUserDatabase,
    UnknownAlias,
    UnknownDomain,
    UnknownUser,
    UserExists,
)
from mailsuite.accounts.schema import SCHEMA_VERSION


@pytest.fixture
def db(tmp_path):
    database = SQLiteUserDatabase(tmp_path / "data" / "mailsuite.db")
    yield database
    database.close()


@pytest.fixture
def example(db):
    """example.com with users bob and alice; other.example is a second local domain."""
    db.add_domain("example.com")
    db.add_domain("other.example")
    db.add_user("bob@example.com", "hash-bob")
    db.add_user("alice@example.com", "hash-alice")
    return db


def test_implements_the_interface(db):
    assert verifyObject(IUserDatabase, db)


# --- domains -------------------------------------------------------------------------------------


def test_add_list_has_domains(db):
    db.add_domain("Example.COM")
    db.add_domain("bücher.example")
    assert db.list_domains() == ["example.com", "xn--bcher-kva.example"]
    assert db.has_domain("EXAMPLE.com")
    assert db.has_domain("BÜCHER.example")
    assert not db.has_domain("example.org")


def test_add_domain_twice_fails(db):
    db.add_domain("example.com")
    with pytest.raises(DomainExists, match="domain example.com already exists"):
        db.add_domain("EXAMPLE.COM.")


def test_add_domain_bad_syntax(db):
    with pytest.raises(AddressError):
        db.add_domain("a..b")
    assert db.list_domains() == []


def test_delete_domain(db):
    db.add_domain("example.com")
    db.delete_domain("Example.com")
    assert db.list_domains() == []
    with pytest.raises(UnknownDomain, match="unknown domain example.com"):
        db.delete_domain("example.com")


def test_delete_domain_with_users_or_aliases_fails(example):
    with pytest.raises(DomainNotEmpty, match="2 users and 0 aliases"):
        example.delete_domain("example.com")
    example.add_alias("@other.example", "bob@example.com")
    with pytest.raises(DomainNotEmpty, match="0 users and 1 alias;"):
        example.delete_domain("other.example")
    example.delete_alias("@other.example")
    example.delete_domain("other.example")
    assert example.list_domains() == ["example.com"]


def test_is_local_domain_is_tolerant(example):
    assert example.is_local_domain("Example.com")
    assert not example.is_local_domain("example.org")
    assert not example.is_local_domain("a..b")
    assert not example.is_local_domain("[127.0.0.1]")
    assert not example.is_local_domain("")
    with pytest.raises(AddressError):
        example.has_domain("a..b")


# --- users ---------------------------------------------------------------------------------------


def test_add_and_get_user(db):
    db.add_domain("example.com")
    db.add_user("Carol@Example.COM", "hash-carol")
    user = db.get_user("CAROL@example.com")
    assert user.address == "carol@example.com"
    assert user.password_hash == "hash-carol"
    assert user.enabled is True
    assert user.created[:2] == "20" and "T" in user.created
    assert db.get_user("nobody@example.com") is None
    with pytest.raises(AddressError):
        db.get_user("../etc@example.com")


def test_add_user_errors(example):
    with pytest.raises(UnknownDomain, match="unknown domain example.org"):
        example.add_user("bob@example.org", "h")
    with pytest.raises(UserExists, match="user bob@example.com already exists"):
        example.add_user("BOB@example.com", "h")
    with pytest.raises(AddressError):
        example.add_user("a/b@example.com", "h")
    assert example.get_user("bob@example.com").password_hash == "hash-bob"


def test_user_may_also_be_an_alias_source(example):
    example.add_alias("carol@example.com", "bob@example.com")
    example.add_user("carol@example.com", "h")
    assert example.get_user("carol@example.com") is not None


def test_set_password_hash(example):
    example.set_password_hash("Bob@example.com", "new-hash")
    assert example.get_user("bob@example.com").password_hash == "new-hash"
    assert example.get_user("alice@example.com").password_hash == "hash-alice"


def test_enable_and_disable(example):
    example.set_enabled("bob@example.com", False)
    assert example.get_user("bob@example.com").enabled is False
    example.set_enabled("bob@example.com", True)
    assert example.get_user("bob@example.com").enabled is True


def test_unknown_user_errors(example):
    for call in (
        lambda: example.set_password_hash("carol@example.com", "h"),
        lambda: example.set_enabled("carol@example.com", False),
        lambda: example.delete_user("carol@example.com"),
    ):
        with pytest.raises(UnknownUser, match="unknown user carol@example.com"):
            call()


def test_delete_user(example):
    example.delete_user("BOB@example.com")
    assert example.get_user("bob@example.com") is None
    assert [u.address for u in example.list_users()] == ["alice@example.com"]


def test_list_users(example):
    example.add_user("zed@other.example", "h")
    example.set_enabled("bob@example.com", False)
    users = example.list_users()
    assert [(u.address, u.enabled) for u in users] == [
        ("alice@example.com", True),
        ("bob@example.com", False),
        ("zed@other.example", True),
    ]
    assert [u.address for u in example.list_users("OTHER.example")] == ["zed@other.example"]
    with pytest.raises(UnknownDomain):
        example.list_users("example.org")


# --- aliases -------------------------------------------------------------------------------------


def test_add_and_list_aliases(example):
    assert example.add_alias("Sales@Example.com", "Bob@Example.com") == Alias(
        "sales@example.com", "bob@example.com"
    )
    # A remote target keeps the case of its local part; only its domain is normalized.
    assert example.add_alias("sales@example.com", "Ext@Bücher.Example") == Alias(
        "sales@example.com", "Ext@xn--bcher-kva.example"
    )
    example.add_alias("@other.example", "alice@example.com")
    example.add_alias("abuse@example.com", "alice@example.com")
    assert example.list_aliases() == [
        Alias("@other.example", "alice@example.com"),
        Alias("abuse@example.com", "alice@example.com"),
        Alias("sales@example.com", "bob@example.com"),
        Alias("sales@example.com", "Ext@xn--bcher-kva.example"),
    ]
    assert example.list_aliases("other.example") == [Alias("@other.example", "alice@example.com")]
    with pytest.raises(UnknownDomain):
        example.list_aliases("example.org")


def test_add_alias_errors(example):
    example.add_alias("sales@example.com", "bob@example.com")
    with pytest.raises(AliasExists, match="alias sales@example.com -> bob@example.com already"):
        example.add_alias("SALES@example.com", "BOB@example.com")
    with pytest.raises(UnknownDomain):
        example.add_alias("sales@example.org", "bob@example.com")
    with pytest.raises(UnknownDomain):
        example.add_alias("@example.org", "bob@example.com")
    for source, target in [
        ("a/b@example.com", "bob@example.com"),
        ("sales@example.com", "@example.com"),
        ("sales@example.com", "not an address"),
        ("sales@example.com", "ü@example.com"),  # local domain: must be a valid mailbox
        ("@a..b", "bob@example.com"),
    ]:
        with pytest.raises(AddressError):
            example.add_alias(source, target)
    assert example.add_alias("sales@example.com", "ü@example.org").target == "ü@example.org"


def test_delete_alias(example):
    example.add_alias("sales@example.com", "bob@example.com")
    example.add_alias("sales@example.com", "Ext@example.org")
    example.add_alias("team@example.com", "bob@example.com")
    example.add_alias("team@example.com", "alice@example.com")
    example.delete_alias("sales@example.com", "BOB@example.com")
    example.delete_alias("sales@example.com", "Ext@EXAMPLE.org")
    example.delete_alias("Team@example.com")
    assert example.list_aliases() == []
    with pytest.raises(UnknownAlias, match="unknown alias team@example.com$"):
        example.delete_alias("team@example.com")
    example.add_alias("sales@example.com", "Ext@example.org")
    with pytest.raises(UnknownAlias, match="unknown alias sales@example.com -> "):
        example.delete_alias("sales@example.com", "other@example.org")


# --- resolution ----------------------------------------------------------------------------------


def R(mailboxes=(), remote=()):
    return Resolution(tuple(mailboxes), tuple(remote))


def test_resolve_user(example):
    assert example.resolve_recipient("bob@example.com") == R(["bob@example.com"])
    assert example.resolve_recipient("BOB@Example.COM") == R(["bob@example.com"])


def test_resolve_unknown_and_non_local(example):
    assert example.resolve_recipient("carol@example.com") is None
    assert example.resolve_recipient("bob@example.org") is None
    assert example.resolve_recipient('"odd one"@example.com') is None
    for bad in ("bob", "bob@a..b", "a b@example.com", "bob@[127.0.0.1]"):
        with pytest.raises(AddressError):
            example.resolve_recipient(bad)


def test_resolve_alias_chain(example):
    example.add_alias("a@example.com", "b@example.com")
    example.add_alias("b@example.com", "c@example.com")
    example.add_alias("c@example.com", "alice@example.com")
    assert example.resolve_recipient("A@example.com") == R(["alice@example.com"])


def test_resolve_loop_without_users_is_nobody(example):
    example.add_alias("a@example.com", "b@example.com")
    example.add_alias("b@example.com", "a@example.com")
    assert example.resolve_recipient("a@example.com") is None


def test_resolve_loop_back_to_a_user_delivers_to_it(example):
    example.add_alias("bob@example.com", "b@example.com")
    example.add_alias("b@example.com", "bob@example.com")
    example.add_alias("b@example.com", "alice@example.com")
    assert example.resolve_recipient("bob@example.com") == R(
        ["bob@example.com", "alice@example.com"]
    )
    # from b, bob forwards back to b, which is no user: only alice is left
    assert example.resolve_recipient("b@example.com") == R(["alice@example.com"])


def test_resolve_alias_to_self_and_others(example):
    example.add_alias("bob@example.com", "bob@example.com")
    example.add_alias("bob@example.com", "Boss@Example.org")
    example.add_alias("bob@example.com", "alice@example.com")
    assert example.resolve_recipient("bob@example.com") == R(
        ["bob@example.com", "alice@example.com"], ["Boss@example.org"]
    )


def test_resolve_forwarding_user_is_forwarded_also_when_reached_through_an_alias(example):
    example.add_alias("bob@example.com", "bob@elsewhere.example")
    example.add_alias("team@example.com", "bob@example.com")
    example.add_alias("team@example.com", "alice@example.com")
    assert example.resolve_recipient("bob@example.com") == R([], ["bob@elsewhere.example"])
    assert example.resolve_recipient("team@example.com") == R(
        ["alice@example.com"], ["bob@elsewhere.example"]
    )


def test_resolve_remote_targets_only(example):
    example.add_alias("list@example.com", "a@example.org")
    example.add_alias("list@example.com", "B@example.net")
    assert example.resolve_recipient("list@example.com") == R(
        [], ["a@example.org", "B@example.net"]
    )


def test_resolve_removes_duplicates_and_keeps_order(example):
    example.add_alias("all@example.com", "team@example.com")
    example.add_alias("all@example.com", "alice@example.com")
    example.add_alias("all@example.com", "x@example.org")
    example.add_alias("team@example.com", "bob@example.com")
    example.add_alias("team@example.com", "alice@example.com")
    example.add_alias("team@example.com", "x@example.org")
    assert example.resolve_recipient("all@example.com") == R(
        ["bob@example.com", "alice@example.com"], ["x@example.org"]
    )


def test_resolve_same_alias_reached_twice_expands_both_times(example):
    example.add_alias("a@example.com", "b@example.com")
    example.add_alias("a@example.com", "c@example.com")
    example.add_alias("b@example.com", "d@example.com")
    example.add_alias("c@example.com", "d@example.com")
    example.add_alias("d@example.com", "alice@example.com")
    assert example.resolve_recipient("a@example.com") == R(["alice@example.com"])


def test_resolve_catchall(example):
    example.add_alias("@example.com", "alice@example.com")
    example.add_alias("@other.example", "bob@example.com")
    example.add_alias("@other.example", "fwd@example.org")
    assert example.resolve_recipient("anything@example.com") == R(["alice@example.com"])
    assert example.resolve_recipient('"odd one"@example.com') == R(["alice@example.com"])
    # an existing user is not caught
    assert example.resolve_recipient("bob@example.com") == R(["bob@example.com"])
    assert example.resolve_recipient("x@other.example") == R(
        ["bob@example.com"], ["fwd@example.org"]
    )


def test_resolve_dangling_targets(example):
    example.add_alias("sales@example.com", "gone@example.com")
    assert example.resolve_recipient("sales@example.com") is None
    example.add_alias("sales@example.com", "bob@example.com")
    assert example.resolve_recipient("sales@example.com") == R(["bob@example.com"])
    # a dangling target falls to its domain's catch-all, like any other address
    example.add_alias("@example.com", "alice@example.com")
    assert example.resolve_recipient("sales@example.com") == R(
        ["alice@example.com", "bob@example.com"]
    )


def test_resolve_catchall_to_missing_user_terminates(example):
    example.add_alias("@other.example", "nobody@other.example")
    assert example.resolve_recipient("x@other.example") is None


def test_resolve_disabled(example):
    example.set_enabled("bob@example.com", False)
    with pytest.raises(MailboxDisabled, match="mailbox bob@example.com is disabled"):
        example.resolve_recipient("bob@example.com")
    example.add_alias("team@example.com", "bob@example.com")
    with pytest.raises(MailboxDisabled):
        example.resolve_recipient("team@example.com")
    example.add_alias("team@example.com", "alice@example.com")
    assert example.resolve_recipient("team@example.com") == R(["alice@example.com"])
    assert isinstance(MailboxDisabled("x"), AccountsError)


def test_resolve_target_whose_domain_became_local(example):
    example.add_alias("fwd@example.com", "Carol@new.example")
    assert example.resolve_recipient("fwd@example.com") == R([], ["Carol@new.example"])
    example.add_domain("new.example")
    example.add_user("carol@new.example", "h")
    assert example.resolve_recipient("fwd@example.com") == R(["carol@new.example"])


def _chain(db, hops):
    """a0 -> a1 -> ... -> a{hops-1} -> alice: alice is reached after ``hops`` aliases."""
    for i in range(hops - 1):
        db.add_alias(f"a{i}@example.com", f"a{i + 1}@example.com")
    db.add_alias(f"a{hops - 1}@example.com", "alice@example.com")


def test_resolve_depth_limit_allows_ten_hops(example):
    _chain(example, 10)
    assert example.resolve_recipient("a0@example.com") == R(["alice@example.com"])


def test_resolve_depth_limit_stops_at_eleven_hops(example):
    _chain(example, 11)
    assert example.resolve_recipient("a0@example.com") is None
    assert example.resolve_recipient("a1@example.com") == R(["alice@example.com"])


# --- owns_address --------------------------------------------------------------------------------


def test_owns_address(example):
    example.add_alias("sales@example.com", "bob@example.com")
    example.add_alias("sales@example.com", "x@example.org")
    example.add_alias("all@example.com", "sales@example.com")
    example.add_alias("info@example.com", "alice@example.com")
    example.add_alias("@example.com", "bob@example.com")
    assert example.owns_address("bob@example.com", "Bob@Example.com")
    assert example.owns_address("bob@example.com", "sales@example.com")
    assert example.owns_address("bob@example.com", "all@example.com")
    assert not example.owns_address("bob@example.com", "info@example.com")
    assert not example.owns_address("bob@example.com", "alice@example.com")
    # a catch-all delivers to bob, but does not let him send as any address
    assert not example.owns_address("bob@example.com", "random@example.com")
    assert not example.owns_address("bob@example.com", "x@example.org")
    assert not example.owns_address("bob@example.com", "not an address")
    assert not example.owns_address("bob@example.com", "")


# --- connections, threads, migrations ------------------------------------------------------------


def test_two_threads_share_the_database(example):
    barrier = threading.Barrier(2)
    errors = []
    connections = {}

    def work(name):
        try:
            barrier.wait(timeout=5)
            for i in range(20):
                example.add_user(f"{name}{i}@example.com", "h")
                assert example.get_user(f"{name}{i}@example.com") is not None
                example.resolve_recipient("bob@example.com")
            connections[name] = example._connection()
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(name,)) for name in ("t", "u")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert errors == []
    assert connections["t"] is not connections["u"]
    assert len(example.list_users("example.com")) == 2 + 40


def test_changes_are_visible_to_another_open_database_at_once(tmp_path):
    server = SQLiteUserDatabase(tmp_path / "mailsuite.db")
    admin = SQLiteUserDatabase(tmp_path / "mailsuite.db")
    try:
        assert server.resolve_recipient("bob@example.com") is None
        admin.add_domain("example.com")
        admin.add_user("bob@example.com", "h")
        assert server.resolve_recipient("bob@example.com") == R(["bob@example.com"])
        admin.set_enabled("bob@example.com", False)
        with pytest.raises(MailboxDisabled):
            server.resolve_recipient("bob@example.com")
    finally:
        server.close()
        admin.close()


def test_creates_private_directory_and_file_in_wal_mode(tmp_path):
    path = tmp_path / "new" / "dir" / "mailsuite.db"
    database = SQLiteUserDatabase(path)
    database.close()
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_migrates_an_empty_file_and_reopens(tmp_path):
    path = tmp_path / "mailsuite.db"
    path.write_bytes(b"")
    database = SQLiteUserDatabase(path)
    database.add_domain("example.com")
    database.add_user("bob@example.com", "h")
    database.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    assert {"domains", "users", "aliases"} <= tables
    reopened = SQLiteUserDatabase(path)
    try:
        assert reopened.get_user("bob@example.com").password_hash == "h"
    finally:
        reopened.close()


def test_refuses_a_newer_schema(tmp_path):
    path = tmp_path / "mailsuite.db"
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(SchemaTooNew, match="newer than this mailsuite supports"):
        SQLiteUserDatabase(path)


def test_foreign_keys_are_enforced(db):
    db.add_domain("example.com")
    with pytest.raises(sqlite3.IntegrityError):
        db._connection().execute(
            "INSERT INTO users (address, domain, password_hash, enabled, created)"
            " VALUES ('x@example.org', 'example.org', 'h', 1, 'now')"
        )


def test_closed_database_refuses_calls(tmp_path):
    database = SQLiteUserDatabase(tmp_path / "mailsuite.db")
    database.close()
    with pytest.raises(DatabaseClosed):
        database.list_domains()
