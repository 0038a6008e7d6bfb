"""`ferrymq` command line: serve, backup, restore, bench, version, and the operator
commands."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import fields
from typing import Any

from ferrymq import __version__
from ferrymq.config import Settings, load_settings
from ferrymq.errors import ConfigError, FerrymqError
from ferrymq.server.malloc import tune_malloc

__all__ = ["main"]

log = logging.getLogger("ferrymq")


def _add_setting_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per Settings field; unset flags stay None so lower layers show through."""
    types = {"int": int, "float": float, "str": str}
    for f in fields(Settings):
        if f.metadata.get("file_only"):
            continue
        type_name = f.type if isinstance(f.type, str) else f.type.__name__
        if type_name == "bool":
            # --fencing / --no-fencing: a bool that defaults to true can be turned off.
            parser.add_argument(
                f"--{f.name.replace('_', '-')}",
                dest=f.name,
                action=argparse.BooleanOptionalAction,
                default=None,
                help=f"{f.metadata.get('doc', '')} (default: {f.default!r})",
            )
            continue
        parser.add_argument(
            f"--{f.name.replace('_', '-')}",
            dest=f.name,
            type=types[type_name],
            default=None,
            metavar=f.name.upper(),
            help=f"{f.metadata.get('doc', '')} (default: {f.default!r})",
        )


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ferrymq",
        description="ferrymq message broker",
        epilog="operator commands: user, status, queues, topics, connections, browse, send, "
        "receive, purge, move (ferrymq COMMAND --help)",
    )
    parser.add_argument("--version", action="version", version=f"ferrymq {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run a broker")
    serve.add_argument("--config", help="TOML settings file (also FERRYMQ_CONFIG)")
    _add_setting_flags(serve)
    backup = sub.add_parser(
        "backup",
        help="write a consistent backup of a data directory's journal (broker running or not)",
    )
    backup.add_argument("out", metavar="OUT", help="backup directory to create (new or empty)")
    _add_data_flag(backup)
    backup.add_argument(
        "--timeout", type=float, default=600.0, help="seconds to wait for a running broker"
    )
    restore = sub.add_parser("restore", help="restore a backup into an empty data directory")
    restore.add_argument("backup", metavar="BACKUP", help="directory written by ferrymq backup")
    _add_data_flag(restore)
    sub.add_parser("bench", help="load-test a STOMP broker (ferrymq bench --help)")
    sub.add_parser("version", help="print the version")
    return parser


def _add_data_flag(parser: argparse.ArgumentParser) -> None:
    import os

    parser.add_argument(
        "--data",
        default=os.environ.get("FERRYMQ_DATA", Settings().data),
        help="data directory (default: FERRYMQ_DATA or %(default)s)",
    )


def _cmd_backup(ns: argparse.Namespace) -> int:
    from ferrymq.backup import backup_data_dir

    return _run_backup_command(
        lambda: backup_data_dir(ns.data, ns.out, timeout=ns.timeout), f"backup written to {ns.out}"
    )


def _cmd_restore(ns: argparse.Namespace) -> int:
    from ferrymq.backup import restore

    return _run_backup_command(
        lambda: restore(ns.backup, ns.data), f"restored {ns.backup} into {ns.data}"
    )


def _run_backup_command(run: Callable[[], dict[str, Any]], done: str) -> int:
    from ferrymq.backup import BackupError
    from ferrymq.store.journal import JournalError

    try:
        manifest = run()
    except (BackupError, FerrymqError, JournalError, OSError) as exc:
        print(f"ferrymq: {exc}", file=sys.stderr)
        return 1
    print(
        f"{done}: {len(manifest['segments'])} segments, {manifest['total_bytes']} bytes"
        f" (taken {manifest['created']}, {'online' if manifest['online'] else 'offline'})"
    )
    return 0


def _install_uvloop() -> str:
    try:
        import uvloop
    except ImportError:
        return "asyncio"
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return "uvloop"


# Exit status of a master that fenced itself: a supervisor restarts it, as a slave.
EXIT_FENCED = 75


async def _serve(settings: Settings) -> int:
    from ferrymq.server.server import BrokerServer

    server = BrokerServer(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    # Before start: a signal right after the start line is logged still stops cleanly.
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    # A slave waits in start() for the lock: a signal must end that wait too.
    starting = asyncio.ensure_future(server.start())
    stopping = asyncio.ensure_future(stop.wait())
    fenced = asyncio.ensure_future(server.fenced.wait())
    try:
        await asyncio.wait([starting, stopping], return_when=asyncio.FIRST_COMPLETED)
        if starting.done():
            starting.result()  # start-up errors propagate
            await asyncio.wait([stopping, fenced], return_when=asyncio.FIRST_COMPLETED)
        else:
            starting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await starting
    finally:
        for task in (stopping, fenced):
            task.cancel()
    if server.fenced.is_set():
        log.critical("stopping: fenced (%s); exit status %d", server.fence_reason, EXIT_FENCED)
        await server.stop()
        return EXIT_FENCED
    log.info("stopping on signal")
    await server.stop()
    return 0


def _cmd_serve(ns: argparse.Namespace) -> int:
    import os

    from ferrymq.store.journal import JournalCorruption, JournalError
    from ferrymq.store.journal_store import StoreUnavailable

    overrides: dict[str, Any] = {f.name: getattr(ns, f.name, None) for f in fields(Settings)}
    config_file = ns.config or os.environ.get("FERRYMQ_CONFIG")
    try:
        settings = load_settings(config_file=config_file, overrides=overrides)
    except ConfigError as exc:
        print(f"ferrymq: configuration error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    tune_malloc()
    loop_name = _install_uvloop()
    log.debug("event loop: %s", loop_name)
    try:
        return asyncio.run(_serve(settings))
    except ConfigError as exc:
        print(f"ferrymq: configuration error: {exc}", file=sys.stderr)
        return 2
    except (OSError, FerrymqError, JournalCorruption, JournalError, StoreUnavailable) as exc:
        # A port in use, a locked or corrupt data directory, a database that
        # refuses us (ferrymq.store.postgres.StoreConnectError): one clear line.
        print(f"ferrymq: cannot start: {exc}", file=sys.stderr)
        return 1


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["bench"]:
        # The bench parses its own options (argparse's REMAINDER would refuse
        # a first argument that starts with '-').
        from ferrymq.bench import main as bench_main

        return bench_main(args[1:])
    from ferrymq.ctl import COMMANDS as CTL_COMMANDS

    if args[:1] and args[0] in CTL_COMMANDS:
        # Users file and admin commands (status, queues, send, ...): see ferrymq.ctl.
        from ferrymq.ctl import main as ctl_main

        return ctl_main(args)
    parser = _build_parser()
    ns = parser.parse_args(args)
    if ns.command == "serve":
        return _cmd_serve(ns)
    if ns.command == "backup":
        return _cmd_backup(ns)
    if ns.command == "restore":
        return _cmd_restore(ns)
    if ns.command == "version":
        print(f"ferrymq {__version__}")
        return 0
    parser.error(f"unknown command {ns.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
