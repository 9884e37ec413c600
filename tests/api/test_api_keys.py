"""API keys: made and shown once by mailsuite-admin, stored as a SHA-256 only, listed without
the key, revoked at once; the webhook and key tables come with the user database's migration."""

from __future__ import annotations

import hashlib
import json
import sqlite3

import pytest
from api_client import ALICE, BOB, admin, new_key, run_admin
from conftest import cli_fails as fails
from zope.interface.verify import verifyObject

from mailsuite.accounts.apikeys import IAPIKeys, key_id
from mailsuite.accounts.database import SQLiteUserDatabase
from mailsuite.accounts.passwords import hash_password
from mailsuite.accounts.webhooks import IWebhooks


def test_a_key_is_shown_once_and_kept_as_a_hash(suite):
    out = admin(suite, "apikey", "add", "Alice@Example.com", "--name", "CI deploys")
    key, note = out.splitlines()
    assert key.startswith("ms_") and len(key) == 35 and key_id(key) == key[3:11]
    assert f"API key {key[3:11]} for {ALICE}" in note

    db = sqlite3.connect(suite.config.db_path)
    try:
        rows = db.execute("SELECT id, owner, label, digest FROM api_keys").fetchall()
    finally:
        db.close()
    assert rows == [(key[3:11], ALICE, "CI deploys", hashlib.sha256(key.encode()).hexdigest())]
    raw = b"".join(p.read_bytes() for p in suite.config.data_dir.glob("mailsuite.db*"))
    assert key.encode() not in raw and key[11:].encode() not in raw

    listed = json.loads(admin(suite, "apikey", "list", "--json"))
    assert listed == [
        {
            "id": key[3:11],
            "user": ALICE,
            "label": "CI deploys",
            "created": listed[0]["created"],
            "last_used": None,
        }
    ]
    text = admin(suite, "apikey", "list")
    assert text.startswith(f"{key[3:11]} {ALICE} 'CI deploys' created ") and key not in text
    assert text.rstrip().endswith("last used never")


def test_checking_keys(suite):
    key = new_key(suite, BOB)
    found = suite.db.check_api_key(key)
    assert (found.user, found.id) == (BOB, key[3:11])
    assert suite.db.list_api_keys(BOB)[0].last_used is not None  # noted on use
    assert suite.db.check_api_key(key[:-1] + "-" if key[-1] != "-" else key[:-1] + "_") is None
    assert suite.db.check_api_key("ms_short") is None
    assert suite.db.check_api_key(None) is None  # type: ignore[arg-type]
    suite.db.set_enabled(BOB, False)
    assert suite.db.check_api_key(key) is None
    suite.db.set_enabled(BOB, True)
    suite.db.delete_user(BOB)  # its keys go with it
    assert suite.db.check_api_key(key) is None and suite.db.list_api_keys() == []


def test_key_command_errors(suite):
    fails(run_admin(suite, "apikey", "add", "zed@example.com"), "unknown user zed@example.com")
    fails(run_admin(suite, "apikey", "add", ALICE, "--name", "two\nlines"), "one line")
    fails(run_admin(suite, "apikey", "revoke", "nosuchid"), "unknown API key nosuchid")
    key = new_key(suite)
    new_key(suite, BOB)
    assert [k["user"] for k in json.loads(admin(suite, "apikey", "list", "--json"))] == [ALICE, BOB]
    assert admin(suite, "apikey", "list", BOB).count("\n") == 1
    admin(suite, "apikey", "revoke", key[3:11])
    assert suite.db.check_api_key(key) is None


@pytest.fixture
def db(tmp_path):
    database = SQLiteUserDatabase(tmp_path / "mailsuite.db")
    yield database
    database.close()


def test_the_database_provides_keys_and_webhooks(db):
    assert verifyObject(IAPIKeys, db) and verifyObject(IWebhooks, db)
    db.add_domain("example.com")
    db.add_user(ALICE, hash_password("x"))
    record, key = db.add_api_key(ALICE, "label")
    assert db.check_api_key(key).id == record.id == key_id(key)
    assert db.revoke_api_key(record.id).id == record.id
    hook = db.add_webhook("https://h.example/x", ALICE, ("bounced",))
    assert db.list_webhooks() == [hook] and hook.secret.startswith("whsec_")
