"""The e2e tests' pytest hooks: which Thunderbird drives them, shown in every run.

tests/ is no package, so pytest imports this file, like tests/conftest.py, as the module
``conftest`` and drops the top one from ``sys.modules`` to do so; test modules all over tests/
then ``from conftest import ...`` the top one's names. ``pytest_configure`` puts it back.

This file is imported only once collection reaches tests/e2e when pytest runs on tests/ (the
README's plain ``pytest``), too late for ``pytest_report_header``: the version then comes after
the collection count instead (``pytest_report_collectionfinish``, shown even with ``-q``).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

VERSION_SHOWN = pytest.StashKey[bool]()


def pytest_configure(config: pytest.Config) -> None:
    """Make ``conftest`` in ``sys.modules`` tests/conftest.py again (see above)."""
    top = Path(__file__).resolve().parent.parent / "conftest.py"
    for plugin in config.pluginmanager.get_plugins():
        path = getattr(plugin, "__file__", None)
        if path and Path(path).resolve() == top:
            sys.modules["conftest"] = plugin
            return


@functools.cache
def version_of(binary: str) -> str:
    """``thunderbird --version`` (Debian's wrapper script, run with an empty HOME so it has no
    profile to migrate), or why there is none."""
    with tempfile.TemporaryDirectory(prefix="tb-version-") as home:
        try:
            done = subprocess.run(
                [binary, "--version"],
                env={**os.environ, "HOME": home},
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=60,
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            return f"version unknown ({error})"
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        return f"version unknown (exit {done.returncode}: {done.stderr.strip()[-200:]})"
    return lines[-1]


def version_line() -> str:
    binary = shutil.which("thunderbird")
    if binary is None:
        return "thunderbird: not installed"
    return f"thunderbird: {version_of(binary)} ({binary})"


def pytest_report_header(config: pytest.Config) -> str:
    config.stash[VERSION_SHOWN] = True
    return version_line()


def pytest_report_collectionfinish(config: pytest.Config) -> str | list[str]:
    if config.stash.get(VERSION_SHOWN, False):
        return []
    return version_line()


@pytest.fixture(scope="session")
def thunderbird_binary() -> str:
    from support.tools import tool_or_skip

    return tool_or_skip("thunderbird")


@pytest.fixture(scope="session")
def thunderbird_version(thunderbird_binary: str) -> str:
    """What ``thunderbird --version`` prints, e.g. "Mozilla Thunderbird 153.8.0esr"."""
    return version_of(thunderbird_binary)
