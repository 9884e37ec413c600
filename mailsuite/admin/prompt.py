"""Reading a new password: from the first line of stdin for scripts, else asked twice."""

from __future__ import annotations

import getpass
import sys

from mailsuite.admin.context import CommandError


def read_new_password(address: str, from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().removesuffix("\n").removesuffix("\r")
    else:
        if not sys.stdin.isatty():
            raise CommandError("no terminal to ask for the password; use --password-stdin")
        try:
            password = getpass.getpass(f"New password for {address}: ")
            again = getpass.getpass("Repeat the password: ")
        except EOFError:
            raise CommandError("no password given") from None
        if password != again:
            raise CommandError("the passwords do not match")
    if not password:
        raise CommandError("empty password refused")
    return password
