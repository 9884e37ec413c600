"""Real programs from Debian the tests drive (curl, mbsync, fetchmail, getmail, Postfix): skipped
where this machine lacks one, except under CI (the env var CI set), where .ci/run installs them
all and a missing one is a failure."""

from __future__ import annotations

import os
import shutil
from typing import NoReturn

import pytest


def unavailable(reason: str, ci: str = ".ci/run installs it") -> NoReturn:
    """Skip the test for ``reason``; fail it under CI, where ``ci`` says why it should be there."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason}: {ci}")
    pytest.skip(reason)


def tool_or_skip(name: str) -> str:
    """The path of the program ``name`` (see ``unavailable``)."""
    path = shutil.which(name)
    if path is None:
        unavailable(f"{name} is not installed on this machine")
    return path
