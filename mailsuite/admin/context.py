"""What every admin command gets: the configuration, the database (opened on first use), output.

Also the small helpers the command-group modules share to declare their sub-commands.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

from mailsuite.accounts.database import SQLiteUserDatabase
from mailsuite.config import Config


class CommandError(Exception):
    """An expected failure of a command; main() prints it without a traceback."""


class Context:
    def __init__(self, config: Config) -> None:
        self.config = config
        self._db: SQLiteUserDatabase | None = None

    @property
    def db(self) -> SQLiteUserDatabase:
        if self._db is None:
            self._db = SQLiteUserDatabase(self.config.db_path)
        return self._db

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    @staticmethod
    def say(line: str) -> None:
        print(line)

    @staticmethod
    def print_json(items: list[dict[str, Any]]) -> None:
        print(json.dumps(items, indent=2, ensure_ascii=False))


Handler = Callable[[Context, argparse.Namespace], None]


def global_options(parser: argparse.ArgumentParser, *, top_level: bool) -> None:
    """--config and --data-dir, accepted before the command and after it.

    Below the top level the defaults are SUPPRESS, so a value given earlier is not overwritten.
    """
    default = None if top_level else argparse.SUPPRESS
    parser.add_argument(
        "--config",
        metavar="FILE",
        default=default,
        help="server configuration file (TOML); default: built-in defaults",
    )
    parser.add_argument(
        "--data-dir",
        metavar="DIR",
        default=default,
        help="data directory (overrides server.data_dir of the configuration)",
    )


def add_group(groups: Any, name: str, help: str) -> Any:
    """Add a command group (e.g. 'user') and return the sub-parsers for its actions."""
    parser = groups.add_parser(name, help=help, description=help)
    return parser.add_subparsers(title="actions", dest="action", required=True, metavar="ACTION")


def add_command(actions: Any, name: str, handler: Handler, help: str) -> argparse.ArgumentParser:
    """Add one action of a group, run by ``handler(context, args)``."""
    parser = actions.add_parser(name, help=help, description=help)
    global_options(parser, top_level=False)
    parser.set_defaults(handler=handler)
    return parser


def add_json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print a JSON list of objects")
