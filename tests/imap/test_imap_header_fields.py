"""HEADER.FIELDS by one regex per field list gives what the line-by-line reading gives."""

from __future__ import annotations

import random

from mailsuite.imap.fetch import Section, _header_lines, _header_section


def test_regex_and_line_reading_agree_on_generated_headers():
    rnd = random.Random(9)
    names = [b"Subject", b"subject ", b"SUBJECT\t", b"Subj\x0b", b"From", b"X-Subject", b"Date"]
    names += [b"date\x0c", b"Sub ject", b"no colon here"]
    values = [b" a", b"", b" b: c", b"  spaced  ", b" \xe9", b" x\ry", b" x\ny"]
    for _ in range(5000):
        lines = []
        for _ in range(rnd.randint(0, 10)):
            if rnd.random() < 0.2:
                lines.append(rnd.choice([b"\t", b" "]) + rnd.choice(values).strip())
            else:
                lines.append(rnd.choice(names) + b":" + rnd.choice(values))
        block = b"\r\n".join(lines) + b"\r\n\r\n"
        for fields in (("subject",), ("subject", "date"), ("from",), ("subj",), ("x-subject",)):
            section = Section(text="HEADER.FIELDS", fields=fields)
            assert _header_section(block, section) == _header_lines(block, set(fields), False), (
                block,
                fields,
            )
