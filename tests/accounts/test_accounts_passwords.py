"""Password hashing, verification and upgrade of outdated hashes."""

import pytest
from passlib.hash import argon2

from mailsuite.accounts.passwords import (
    DUMMY_HASH,
    dummy_verify,
    hash_password,
    needs_update,
    verify_password,
)


def test_new_hashes_are_argon2id_with_owasp_minimum_parameters():
    hashed = hash_password("correct horse")
    assert hashed.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert hash_password("correct horse") != hashed  # salted
    assert not needs_update(hashed)


def test_verify_right_and_wrong_password():
    hashed = hash_password("pässwörd")
    assert verify_password("pässwörd", hashed) == (True, None)
    assert verify_password("passwort", hashed) == (False, None)
    assert verify_password("", hashed) == (False, None)


@pytest.mark.parametrize(
    "hashed",
    [
        "",
        "garbage",
        "{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=",
        "$argon2id$v=19$m=19456,t=2,p=1$xx",
        "$2b$12$short",
        None,
    ],
)
def test_malformed_or_unknown_hash_fails_without_raising(hashed):
    assert verify_password("password", hashed) == (False, None)


def test_outdated_argon2_parameters_yield_an_upgrade_hash():
    old = argon2.using(type="ID", memory_cost=1024, time_cost=1, parallelism=4).hash("secret")
    ok, new = verify_password("secret", old)
    assert ok
    assert new is not None and new.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert verify_password("secret", new) == (True, None)
    assert verify_password("wrong", old) == (False, None)


def test_bcrypt_hash_verifies_and_yields_an_argon2_upgrade():
    pytest.importorskip("bcrypt", reason="passlib's bcrypt needs the 'bcrypt' package")
    from passlib.hash import bcrypt

    old = bcrypt.using(rounds=4).hash("secret")
    assert old.startswith("$2b$04$")
    ok, new = verify_password("secret", old)
    assert ok
    assert new is not None and new.startswith("$argon2id$")
    assert verify_password("secret", new) == (True, None)
    assert verify_password("wrong", old) == (False, None)


def test_dummy_hash_matches_the_current_parameters():
    # If the parameters change, DUMMY_HASH must be regenerated, or unknown users answer faster.
    assert not needs_update(DUMMY_HASH)
    dummy_verify()  # does not raise
