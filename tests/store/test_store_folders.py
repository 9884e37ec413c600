"""Maildir++ folders: name mapping, safety, create/delete/rename, subscriptions, defaults."""

from __future__ import annotations

import pytest

from mailsuite.store import mutf7
from mailsuite.store.folders import (
    FolderExists,
    FolderNameError,
    UserFolders,
    dirname_for,
    name_for_dirname,
    normalize_name,
)


def test_mutf7_matches_rfc3501_example():
    assert mutf7.encode("~peter/mail/台北/日本語") == "~peter/mail/&U,BTFw-/&ZeVnLIqe-"
    assert mutf7.decode("&U,BTFw-") == "台北" and mutf7.decode("a&-b") == "a&b"
    with pytest.raises(mutf7.MUTF7Error):
        mutf7.decode("&AGE-")  # "a" encoded: not canonical


@pytest.mark.parametrize("name", ["..", "a/../b", "tmp", "x/new", "", "a//b", "/x", "a\x00b", "~u"])
def test_unsafe_names_are_refused(name):
    with pytest.raises(FolderNameError):
        normalize_name(name)


def test_mapping_round_trips_dots_and_unicode():
    for name in ("Sent", "a/b.c", "Entwürfe/100%", "inbox-ish"):
        assert name_for_dirname(dirname_for(name)) == name
    assert dirname_for("a/b.c") == ".a.b%2Ec"
    assert normalize_name("inbox/x") == "INBOX/x"


def test_defaults_create_delete_rename_subscriptions(tmp_path):
    folders = UserFolders(tmp_path / "u")
    assert set(folders.ensure_defaults()) == {"Sent", "Drafts", "Trash", "Junk", "Archive"}
    assert "Sent" in folders.subscriptions()
    info = {f.name: f for f in folders.list()}
    assert info["Sent"].special_use == "\\Sent" and info["INBOX"].selectable
    folders.create("a/b")
    with pytest.raises(FolderExists):
        folders.create("a/b")
    folders.subscribe("a/b")
    folders.rename("a", "z")
    assert folders.exists("z/b") and not folders.exists("a/b")
    assert "z/b" in folders.subscriptions()
    folders.delete("z")
    info = {f.name: f for f in folders.list()}
    assert not info["z"].selectable and info["z"].has_children
    assert folders.ensure_defaults() == []
