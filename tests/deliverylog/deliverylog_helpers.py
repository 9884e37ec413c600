"""What the delivery-log tests share: running mailsuite-admin in-process against a server's
configuration and data directory, and reading the log after the writer has flushed it."""

from __future__ import annotations

import json
from pathlib import Path

from mailsuite.admin.cli import main
from mailsuite.deliverylog.reader import LogReader


class Admin:
    """run(*args) -> stdout of a mailsuite-admin command that must succeed (stderr empty)."""

    def __init__(self, capsys, config_file: Path, data_dir: Path) -> None:
        self.capsys = capsys
        self.base = ["--config", str(config_file), "--data-dir", str(data_dir)]

    def run(self, *args: str) -> str:
        self.capsys.readouterr()
        code = main([*self.base, *args])
        out, err = self.capsys.readouterr()
        assert (code, err) == (0, ""), err
        return out

    def json(self, *args: str):
        return json.loads(self.run(*args, "--json"))


def flushed_records(service) -> list[dict]:
    """Every record of the running server's delivery log, once its buffer is on disk."""
    assert service.delivery_log.flush(10)
    return list(LogReader(service.config.log_dir).records())


def events(records: list[dict], kind: str, **match) -> list[dict]:
    return [
        r
        for r in records
        if r["event"] == kind and all(r.get(key) == value for key, value in match.items())
    ]
