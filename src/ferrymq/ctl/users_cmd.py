"""`ferrymq user add|remove|list --users FILE`: edit the broker's users file.

A running broker re-reads the file when it changes, so no restart is needed.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from pathlib import Path

from ferrymq.auth import ROLES, User, UsersFile, hash_password, load_users, save_users
from ferrymq.ctl.tables import render_table
from ferrymq.errors import ConfigError

__all__ = ["add_user_parser", "run_user"]


def add_user_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    user = sub.add_parser("user", help="manage the users file (add, remove, list)")
    actions = user.add_subparsers(dest="action", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--users",
        default=os.environ.get("FERRYMQ_USERS"),
        help="users file (default: $FERRYMQ_USERS)",
    )
    add = actions.add_parser("add", parents=[common], help="add (or with --replace, update) a user")
    add.add_argument("name")
    add.add_argument("--password", help="the password (default: prompt, or one line of stdin)")
    add.add_argument(
        "--role",
        action="append",
        default=[],
        choices=sorted(ROLES),
        help="admin: everything; producer: send anywhere; consumer: receive anywhere; "
        "monitor: read-only API (repeatable)",
    )
    for action, what in (
        ("read", "subscribe/browse/receive"),
        ("write", "send"),
        ("admin", "purge/move/delete"),
    ):
        add.add_argument(
            f"--{action}",
            action="append",
            default=[],
            metavar="PATTERN",
            help=f"may {what} destinations matching PATTERN, e.g. '/queue/orders.>' (repeatable)",
        )
    add.add_argument("--replace", action="store_true", help="update the user if it exists")
    remove = actions.add_parser("remove", parents=[common], help="remove a user")
    remove.add_argument("name")
    listing = actions.add_parser("list", parents=[common], help="list users (no hashes)")
    listing.add_argument("--json", action="store_true", help="JSON instead of a table")


def _read_password(ns: argparse.Namespace) -> str:
    if ns.password is not None:
        return str(ns.password)
    if sys.stdin.isatty():
        first = getpass.getpass(f"password for {ns.name}: ")
        if first != getpass.getpass("again: "):
            raise ConfigError("the passwords differ")
        return first
    return sys.stdin.readline().rstrip("\r\n")


def run_user(ns: argparse.Namespace) -> int:
    if not ns.users:
        print("ferrymq user: give --users FILE (or set FERRYMQ_USERS)", file=sys.stderr)
        return 2
    path = Path(ns.users)
    try:
        users = load_users(path) if path.exists() else UsersFile()
        if ns.action == "list":
            listed = [users.users[n].public() for n in sorted(users.users)]
            if ns.json:
                print(json.dumps(listed, indent=2))
            else:
                rows = [[u["name"], u["roles"], u["read"], u["write"], u["admin"]] for u in listed]
                print(render_table(["USER", "ROLES", "READ", "WRITE", "ADMIN"], rows))
            return 0
        if ns.action == "remove":
            if users.users.pop(ns.name, None) is None:
                print(f"ferrymq user: no user {ns.name!r} in {path}", file=sys.stderr)
                return 1
            save_users(path, users)
            print(f"removed user {ns.name}")
            return 0
        if ns.name in users.users and not ns.replace:
            print(f"ferrymq user: {ns.name!r} exists (use --replace)", file=sys.stderr)
            return 1
        if not ns.name or ":" in ns.name:
            print("ferrymq user: a user name must be non-empty without ':'", file=sys.stderr)
            return 2
        password = _read_password(ns)
        if not password:
            print("ferrymq user: empty password", file=sys.stderr)
            return 2
        users.users[ns.name] = User(
            ns.name,
            hash_password(password),
            tuple(dict.fromkeys(ns.role)),
            tuple(ns.read),
            tuple(ns.write),
            tuple(ns.admin),
        )
        save_users(path, users)
        print(f"saved user {ns.name} in {path}")
        return 0
    except ConfigError as exc:
        print(f"ferrymq user: {exc}", file=sys.stderr)
        return 1
