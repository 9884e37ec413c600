"""The Maildir file-name codec: names we make, names others made, flags, sizes, UIDLs."""

from __future__ import annotations

import itertools
import os
import re
import threading

import pytest

from mailsuite.store.names import (
    APPEND_TAG,
    DELIVERY_NAME,
    FLAG_LETTERS,
    MDA_TAG,
    TIME_PREFIX,
    USUAL_NAME,
    NameMaker,
    _crlf_size_any,
    _name_facts_any,
    canonical_flag,
    crlf_size_from_name,
    cur_name,
    encode_host,
    flag_letters,
    keyword_flags,
    name_facts,
    name_sizes,
    split_flags,
    split_info,
    system_flags,
    uidl_for,
    written_by_us,
)

# --- names we make ----------------------------------------------------------------------------


@pytest.fixture
def clock(monkeypatch):
    now = [1_700_000_000_095_000_123]
    monkeypatch.setattr("mailsuite.store.names.time.time_ns", lambda: now[0])
    return now


def test_our_names_are_byte_for_byte_the_format_users_have_on_disk(clock):
    mda = NameMaker(MDA_TAG, "mx.example.com", pid=4242)
    assert mda.make(1234) == "1700000000.M095000P4242Q1.mx.example.com,S=1234"
    assert mda.make(5) == "1700000000.M095000P4242Q2.mx.example.com,S=5"
    append = NameMaker(APPEND_TAG, "imap.example.com")
    assert append.make(7) == f"1700000000.M095000P{os.getpid()}X1.imap.example.com,S=7"


def test_microseconds_are_zero_padded_so_names_of_one_second_sort_in_delivery_order(clock):
    maker = NameMaker(MDA_TAG, "h", pid=1)
    early = maker.make(1)
    clock[0] = 1_700_000_000_120_000_000
    late = maker.make(1)
    assert ".M095000P" in early and ".M120000P" in late and sorted([late, early]) == [early, late]
    clock[0] = 1_700_000_001_000_000_000
    assert ".M000000P" in maker.make(1)


def test_hostnames_are_encoded_and_an_empty_one_is_localhost(clock):
    assert encode_host("odd/host:name") == r"odd\057host\072name"
    assert NameMaker(MDA_TAG, "odd/host:name", pid=1).make(1).endswith(r".odd\057host\072name,S=1")
    assert NameMaker(MDA_TAG, "", pid=1).make(1).endswith(".localhost,S=1")


def test_names_differ_across_threads():
    maker = NameMaker(APPEND_TAG, "h")
    made: list[str] = []

    def worker():
        made.extend([maker.make(1) for _ in range(500)])

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(made)) == 2000


def test_our_names_read_back_as_what_they_say(clock):
    """Round trip: every reader of the codec understands what NameMaker wrote."""
    mda = NameMaker(MDA_TAG, "mx.example.com", pid=77).make(36_700_160)
    assert DELIVERY_NAME.fullmatch(mda) and written_by_us(mda)
    assert USUAL_NAME.match(mda)["ours"] == "36700160"
    assert name_sizes(mda) == (36_700_160, None)
    assert name_facts(mda) == (36_700_160, True)  # our MDA stores CRLF only
    assert crlf_size_from_name(mda) == 36_700_160
    assert uidl_for(mda) == mda
    time_prefix = TIME_PREFIX.match(mda)
    assert (time_prefix[1], time_prefix[2]) == ("1700000000", "095000")
    assert split_info(mda) == (mda, None) and split_flags(mda) == (mda, frozenset())
    # APPEND/COPY names hold the client's bytes: their S= vouches for no CRLF size.
    appended = NameMaker(APPEND_TAG, "mx.example.com").make(10)
    assert not DELIVERY_NAME.fullmatch(appended) and not written_by_us(appended)
    assert name_sizes(appended) == (10, None)
    assert name_facts(appended) is None and crlf_size_from_name(appended) is None
    assert uidl_for(appended) == appended


@pytest.mark.parametrize(
    "name",
    [
        "1.M1P1Q1.host",  # no S=
        "1.M1P1X1.host,S=5",  # not the MDA's
        "1.M1P1Q1.ho/st,S=5",  # a path separator
        "1.M1P1Q1.host,S=5:2,S",  # info: a file name, not a key
        "1.M1P1Q1.,S=5",  # no host
        "\u0661.M1P1Q1.host,S=5",  # a digit outside ASCII
    ],
)
def test_delivery_journal_keys_must_be_names_our_mda_gives(name):
    assert not DELIVERY_NAME.fullmatch(name)


# --- the info part: flags ---------------------------------------------------------------------


def test_every_set_of_system_flags_round_trips_through_a_file_name():
    key = "1700000000.M000001P2Q3.host,S=9"
    system = sorted(FLAG_LETTERS)
    for count in range(len(system) + 1):
        for chosen in itertools.combinations(system, count):
            flags = frozenset(chosen) | {"$Label", "work"}
            name = cur_name(key, flags)
            letters = name.partition(":2,")[2]
            assert name == f"cur/{key}:2,{letters}"
            assert list(letters) == sorted(letters)  # the spec wants ASCII order
            assert split_flags(name) == ("cur/" + key, frozenset(chosen))
            assert split_info(name.removeprefix("cur/")) == (key, letters)
            assert flag_letters(system_flags(flags)) == letters
            assert keyword_flags(flags) == {"$Label", "work"}


def test_info_parts_of_other_programs():
    # Letters we have no flag for (Dovecot keeps keywords as a-z) are kept by split_info and
    # ignored by split_flags.
    assert split_info("1.x.host:2,Sab") == ("1.x.host", "Sab")
    assert split_flags("1.x.host:2,Sab") == ("1.x.host", frozenset({"\\Seen"}))
    assert split_flags("1.x.host:2,PRSTDF") == ("1.x.host", frozenset(FLAG_LETTERS))
    # Experimental ":1," info carries no flags; neither does an empty or absent one.
    assert split_info("1.x.host:1,S") == ("1.x.host", None)
    assert split_flags("1.x.host:1,S") == ("1.x.host", frozenset())
    assert split_info("1.x.host:2,") == ("1.x.host", "")
    assert split_info("1.x.host") == ("1.x.host", None)
    # The base ends at the first colon, wherever the rest goes.
    assert split_info("1.x.host:2,S:junk") == ("1.x.host", "S:junk")
    assert split_flags("1.x.host:") == ("1.x.host", frozenset())


def test_system_flags_are_matched_without_case_and_keywords_keep_theirs():
    assert canonical_flag("\\SEEN") == "\\Seen" and canonical_flag("$forwarded") == "$Forwarded"
    assert canonical_flag("$Label") == "$Label" and canonical_flag("\\Recent") == "\\Recent"


# --- sizes in names ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base", "sizes", "facts", "crlf_size"),
    [
        ("1.M1P2Q3.mx,S=120", (120, None), (120, True), 120),  # our MDA: CRLF only
        ("1.M1P2.host,S=100,W=104", (100, 104), (104, False), 104),  # Dovecot, bare LF
        ("1.M1P2.host,S=104,W=104", (104, 104), (104, True), 104),  # Dovecot, CRLF
        ("1.M1P2V3I4.host,S=100", (100, None), None, None),  # Courier: may hold bare LF
        ("1.M1P2X3.host,S=100", (100, None), None, None),  # an IMAP APPEND of ours
        ("1.M1P2.host,W=104,S=100", (100, 104), (104, False), 104),  # fields swapped
        ("1.M1P2.host,S=100,W=104,T=9", (100, 104), (104, False), 104),  # a field after
        ("1.M1P2.host,S=100,S=104,W=104", (104, 104), (104, True), 104),  # repeated: last
        ("1.M1P2.host,S=104,W=100", (104, 100), None, 100),  # W= below S=: a lying name
        ("1.M1P2Q3.host", (None, None), None, None),  # no fields
        ("1.M1P2.host,S=x,W=", (None, None), None, None),  # fields without numbers
        ("1.M1P2.host,S=\u0663", (3, None), None, None),  # a Unicode decimal: int() reads it
        ("1.M1P2.host,W=\u00b2", (None, None), None, None),  # a superscript: not a number
        ("1.M1P2Q3.host,S=5,W=7", (5, 7), (7, False), 7),  # ours with a W= added by others
        ("", (None, None), None, None),
        (",", (None, None), None, None),
        (",S=0", (0, None), None, None),
        ("S=5", (None, None), None, None),  # no comma: no fields
    ],
)
def test_sizes_names_vouch_for(base, sizes, facts, crlf_size):
    assert name_sizes(base) == sizes
    assert name_facts(base) == facts == _name_facts_any(base)
    assert crlf_size_from_name(base) == crlf_size == _crlf_size_any(base)


def test_name_facts_fast_path_agrees_with_reading_every_field():
    """The one-regex path for the usual name forms gives what looking at every comma field
    gives, on generated names (ours, Dovecot's, fields swapped, repeated or odd), for the
    index and for POP3."""
    import random

    rnd = random.Random(5)
    uniques = [
        "1644000000.M12P3Q4.host",
        "1644000000.M12P3.host",
        "x",
        "",
        "1.M2P3Q.h",
        "9.M1P1Q1.",
    ]
    fields = ["S=100", "S=120", "W=120", "W=100", "S=", "W=x", "S=\u0663", "W=\u00b2", "T=1", "S=0"]
    for _ in range(5000):
        key = rnd.choice(uniques) + "".join(
            "," + rnd.choice(fields) for _ in range(rnd.randint(0, 3))
        )
        try:
            expected = _name_facts_any(key)
        except ValueError:  # int() refused a field isdecimal() passed: never for these
            raise AssertionError(key) from None
        assert name_facts(key) == expected, key
        assert crlf_size_from_name(key) == _crlf_size_any(key), key  # POP3's reading


def test_time_prefix_of_our_names_and_others():
    ours = TIME_PREFIX.match("1700000000.M000042P1Q1.h,S=1")
    assert (ours[1], ours[2]) == ("1700000000", "000042")
    other = TIME_PREFIX.match("1600000000.plain.host")
    assert (other[1], other[2]) == ("1600000000", None)
    assert TIME_PREFIX.match("plain.host") is None


# --- identity ---------------------------------------------------------------------------------


def test_base_name_is_the_identity_and_uidl():
    assert split_info("123.M1P2Q3.host,S=5:2,FS") == ("123.M1P2Q3.host,S=5", "FS")
    assert uidl_for("123.M1P2Q3.host,S=5") == "123.M1P2Q3.host,S=5"


@pytest.mark.parametrize("base", ["1.M1P1Q1." + "h" * 80, "1.M1P1Q1.hôst", "1.M1 P1Q1.host"])
def test_uidl_of_a_name_rfc_1939_forbids_is_a_stable_digest(base):
    uidl = uidl_for(base)
    assert uidl == uidl_for(base) and uidl != base
    assert re.fullmatch(r"H:[0-9a-f]{64}", uidl)
    assert 1 <= len(uidl) <= 70 and all(0x21 <= ord(c) <= 0x7E for c in uidl)


def test_uidl_of_an_undecodable_name_is_a_digest_too():
    """os.listdir gives surrogate escapes for bytes that are not UTF-8."""
    base = os.fsdecode(b"1.M1P1Q1.h\xff")
    assert uidl_for(base).startswith("H:")
