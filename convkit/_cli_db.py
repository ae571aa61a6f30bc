"""``convkit db``: create, upgrade or check convkit's tables in a database.

Each command takes ``--url`` (default ``$CONVKIT_DATABASE_URL``, else
``sqlite:///convkit.db``) and prints URLs with the password hidden. ``check``
exits 0 at the head revision and 1 otherwise, saying how to upgrade on stderr.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, TextIO

from ._errors import SchemaError

__all__ = ["add_parser"]


def _db_url(args: argparse.Namespace) -> str:
    return str(args.url or os.environ.get("CONVKIT_DATABASE_URL") or "sqlite:///convkit.db")


def _cmd_db_upgrade(args: argparse.Namespace, out: TextIO) -> int:
    from .store import _db as engine
    from .store import _migrate as migrate

    url = _db_url(args)
    before = migrate.current_revision(url)
    migrate.upgrade(url, args.revision)
    after = migrate.current_revision(url)
    where = engine.safe_url(url)
    if before == after:
        out.write(f"{where}: convkit schema already at {after or 'base'}\n")
    else:
        out.write(f"{where}: convkit schema upgraded from {before or 'base'} to {after or 'base'}\n")
    return 0


def _cmd_db_current(args: argparse.Namespace, out: TextIO) -> int:
    from .store import _db as engine
    from .store import _migrate as migrate

    url = _db_url(args)
    revision = migrate.current_revision(url)
    status = migrate.schema_status(url)
    out.write(
        f"{engine.safe_url(url)}: revision {revision or 'none'} ({status}; "
        f"this convkit's head is {migrate.head_revision()})\n"
    )
    return 0


def _cmd_db_check(args: argparse.Namespace, out: TextIO) -> int:
    from .store import _db as engine
    from .store import _migrate as migrate

    url = _db_url(args)
    try:
        migrate.ensure_schema(url, upgrade=False)
    except SchemaError as exc:  # a finding, not output: stdout stays for what a script reads
        print(f"convkit: {exc}", file=sys.stderr)
        return 1
    out.write(f"{engine.safe_url(url)}: convkit schema is at head ({migrate.head_revision()})\n")
    return 0


def add_parser(sub: Any) -> None:
    """Register ``convkit db upgrade|current|check`` on the subcommand set ``sub``."""
    db = sub.add_parser("db", help="create, upgrade or check convkit's tables in a database")
    db_sub = db.add_subparsers(dest="db_command", metavar="{upgrade,current,check}", required=True)
    url_help = "database URL (default: $CONVKIT_DATABASE_URL, else sqlite:///convkit.db)"
    up = db_sub.add_parser("upgrade", help="upgrade the schema (creates the tables in an empty database)")
    up.add_argument("--url", help=url_help)
    up.add_argument("--revision", default="head", help="target revision (default: head)")
    up.set_defaults(func=_cmd_db_upgrade)
    cur = db_sub.add_parser("current", help="print the database's schema revision and status")
    cur.add_argument("--url", help=url_help)
    cur.set_defaults(func=_cmd_db_current)
    chk = db_sub.add_parser("check", help="exit 0 when the schema is at head, else 1 saying how to upgrade")
    chk.add_argument("--url", help=url_help)
    chk.set_defaults(func=_cmd_db_check)
