"""`DATA/broker.json`: where the broker holding a data directory can be reached.

Written by the broker once its listeners are bound, removed when it stops.
Tools on the same machine (`ferrymq backup`) read it to find the HTTP port of
the broker that holds `DATA/lock`. It can be stale (a killed broker leaves it
behind), so it is trusted only while the lock is held by the process it
names: the lock file's content starts with the holder's pid.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["BrokerInfo", "read_broker_info", "remove_broker_info", "write_broker_info"]

FILE_NAME = "broker.json"


@dataclass(frozen=True, slots=True)
class BrokerInfo:
    pid: int
    node: str
    version: str
    stomp: str
    http: str | None  # HOST:PORT, None when the HTTP listener is off


def write_broker_info(data_dir: str | os.PathLike[str], info: BrokerInfo) -> None:
    """Replace the file atomically, so a reader never sees half of it."""
    path = Path(data_dir) / FILE_NAME
    tmp = path.with_name(f".{FILE_NAME}.{info.pid}.tmp")
    body = {
        "pid": info.pid,
        "node": info.node,
        "version": info.version,
        "stomp": info.stomp,
        "http": info.http,
    }
    tmp.write_text(json.dumps(body, indent=2) + "\n")
    os.replace(tmp, path)


def read_broker_info(data_dir: str | os.PathLike[str]) -> BrokerInfo | None:
    """The file's content; None if it is missing or unreadable."""
    try:
        raw = json.loads((Path(data_dir) / FILE_NAME).read_text())
        http = raw.get("http")
        return BrokerInfo(
            pid=int(raw["pid"]),
            node=str(raw.get("node", "")),
            version=str(raw.get("version", "")),
            stomp=str(raw.get("stomp", "")),
            http=str(http) if http else None,
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def remove_broker_info(data_dir: str | os.PathLike[str]) -> None:
    with contextlib.suppress(FileNotFoundError):
        (Path(data_dir) / FILE_NAME).unlink()
