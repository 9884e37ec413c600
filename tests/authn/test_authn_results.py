"""Authentication-Results: forged fields naming us go, others stay; ours is well formed."""

from mailsuite.authn import results


def test_forged_results_naming_us_are_removed_others_kept():
    block = (
        b"Authentication-Results: MX.Example.ORG; dkim=pass header.d=bank.example\r\n"
        b"Subject: hi\r\n"
        b"authentication-results: (sneaky) mx.example.org\r\n\t; spf=pass\r\n"
        b"Authentication-Results: relay.other.example; spf=fail\r\n"
    )
    cleaned, removed = results.strip_forged(block, "mx.example.org")
    assert removed == 2
    assert cleaned == b"Subject: hi\r\nAuthentication-Results: relay.other.example; spf=fail\r\n"


def test_a_block_without_the_field_is_returned_as_is():
    block = b"Subject: hi\r\n"
    assert results.strip_forged(block, "mx.example.org") == (block, 0)


def test_header_and_values():
    header = results.header("mx.example.org", ["spf=pass smtp.mailfrom=a@b.example", "dkim=none"])
    assert header == (
        b"Authentication-Results: mx.example.org;\r\n\tspf=pass smtp.mailfrom=a@b.example;"
        b"\r\n\tdkim=none\r\n"
    )
    assert results.pvalue('we"ird local@x') == '"we\\"ird local@x"'
    assert results.comment("a (b)\r\nc") == " (a b c)"
