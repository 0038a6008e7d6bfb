"""Entry point of the operator commands (`ferrymq user ...`, `ferrymq queues`, ...).

Exit codes scripts can rely on: 0 done; 1 the broker refused or failed the
request; 2 bad usage; 3 the broker cannot be reached; 4 authentication or
permission denied (HTTP 401/403); 5 no such queue/topic/connection (404).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from ferrymq.ctl.admin_cmds import ADMIN_COMMANDS, add_admin_parsers
from ferrymq.ctl.client import ApiClient, ApiFailure, Unreachable
from ferrymq.ctl.users_cmd import add_user_parser, run_user

__all__ = ["COMMANDS", "main"]

COMMANDS = frozenset({"user", *ADMIN_COMMANDS})

EXIT_REFUSED, EXIT_USAGE, EXIT_UNREACHABLE, EXIT_DENIED, EXIT_NOT_FOUND = 1, 2, 3, 4, 5


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ferrymq")
    sub = parser.add_subparsers(dest="command", required=True)
    add_user_parser(sub)
    common = argparse.ArgumentParser(add_help=False)
    env = os.environ
    common.add_argument(
        "--url",
        default=env.get("FERRYMQ_URL", "http://127.0.0.1:8161"),
        help="the broker's HTTP address (default: $FERRYMQ_URL or http://127.0.0.1:8161)",
    )
    common.add_argument("--user", default=env.get("FERRYMQ_USER"), help="(or $FERRYMQ_USER)")
    common.add_argument(
        "--password",
        default=env.get("FERRYMQ_PASSWORD"),
        help="(better: $FERRYMQ_PASSWORD, which stays out of the process list)",
    )
    common.add_argument("--json", action="store_true", help="JSON output for scripts")
    common.add_argument("--timeout", type=float, default=30.0, help="seconds per request")
    add_admin_parsers(sub, common)
    return parser


def main(argv: Sequence[str]) -> int:
    ns = _parser().parse_args(list(argv))
    if ns.command == "user":
        return run_user(ns)
    api = ApiClient(ns.url, ns.user, ns.password, timeout=ns.timeout)
    command, _ = ADMIN_COMMANDS[ns.command]
    try:
        return command(api, ns)
    except Unreachable as exc:
        print(f"ferrymq {ns.command}: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except ApiFailure as exc:
        print(f"ferrymq {ns.command}: {exc}", file=sys.stderr)
        if exc.status in (401, 403):
            return EXIT_DENIED
        if exc.status == 404:
            return EXIT_NOT_FOUND
        return EXIT_USAGE if exc.status == 400 else EXIT_REFUSED
