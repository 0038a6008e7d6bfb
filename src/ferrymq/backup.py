"""Backup and restore of a broker's journal: `ferrymq backup` and `ferrymq restore`.

A backup is a directory::

    OUT/manifest.json      what is in it, with a SHA-256 per file (written last)
    OUT/journal/*.seg      journal segments: a journal directory recovery can open

Online (a broker holds the data directory), the broker takes it itself
(`Journal.snapshot`, asked through `POST /api/backup`): a consistent image of
everything appended before the request. Offline, the tool takes the data
directory's lock, so that no broker starts meanwhile, and copies the segments
as they are (a torn tail left by a crash is cut by recovery after restore, as
it would be at the next start). Restore checks the manifest and every
checksum, copies into an empty data directory under a temporary name and
renames it into place, so a failed restore leaves no half journal behind.
See docs/durability.md, "Backup and restore".
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import os
import re
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ferrymq import __version__
from ferrymq.errors import FerrymqError

__all__ = [
    "BackupError",
    "BackupTargetNotEmpty",
    "backup_data_dir",
    "backup_offline",
    "backup_online",
    "read_manifest",
    "restore",
    "verify_backup",
]

MANIFEST = "manifest.json"
FORMAT = "ferrymq-backup"
FORMAT_VERSION = 1
JOURNAL = "journal"
_SEGMENT = re.compile(r"^\d{20}\.seg$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_CHUNK = 1024 * 1024


class BackupError(FerrymqError):
    """A backup cannot be taken or restored; the text says why."""


class BackupTargetNotEmpty(BackupError):
    """The backup or restore target already holds files."""


# -- taking a backup -----------------------------------------------------------


def prepare_target(out: str | os.PathLike[str]) -> tuple[Path, bool]:
    """Claim ``out`` (absolute, new or empty) for a backup: create OUT/journal.

    Returns the path and whether OUT was created here (to clean up on failure).
    Creating OUT/journal is the claim: a second backup into the same directory
    fails on it even if both saw OUT empty.
    """
    path = Path(out)
    if not path.is_absolute():
        raise BackupError(f"backup path must be absolute: {out}")
    created = False
    if path.exists():
        if not path.is_dir():
            raise BackupError(f"backup target {path} exists and is not a directory")
        if any(path.iterdir()):
            raise BackupTargetNotEmpty(f"backup target {path} is not empty")
    else:
        try:
            path.mkdir(parents=True)
        except FileExistsError:
            pass
        except OSError as exc:
            raise BackupError(f"cannot create backup directory {path}: {exc}") from exc
        else:
            created = True
    try:
        (path / JOURNAL).mkdir()
    except FileExistsError:
        raise BackupTargetNotEmpty(f"backup target {path} is not empty") from None
    except OSError as exc:
        raise BackupError(f"cannot create {path / JOURNAL}: {exc}") from exc
    return path, created


def abandon_target(path: Path, created: bool) -> None:
    """Undo ``prepare_target`` and whatever a failed backup wrote."""
    shutil.rmtree(path / JOURNAL, ignore_errors=True)
    with contextlib.suppress(FileNotFoundError):
        (path / MANIFEST).unlink()
    if created:
        with contextlib.suppress(OSError):
            path.rmdir()


def make_manifest(files: Sequence[Any], *, source: str, node: str, online: bool) -> dict[str, Any]:
    """``files``: SnapshotFile-like objects (name, size, sha256, linked)."""
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "ferrymq_version": __version__,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds"),
        "node": node,
        "source": source,
        "online": online,
        "total_bytes": sum(f.size for f in files),
        "segments": [
            {"name": f.name, "size": f.size, "sha256": f.sha256, "linked": f.linked} for f in files
        ],
    }


def write_manifest(out: Path, manifest: dict[str, Any]) -> None:
    """Write the manifest durably, last: a backup without one is incomplete."""
    tmp = out / f".{MANIFEST}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, out / MANIFEST)
    _fsync_dir(out)


async def backup_online(journal: Any, out: str, *, node: str, source: str) -> dict[str, Any]:
    """Snapshot a running journal (``ferrymq.store.journal.Journal``) into ``out``."""
    import asyncio

    path, created = await asyncio.to_thread(prepare_target, out)
    try:
        files = await journal.snapshot(path / JOURNAL)
        manifest = make_manifest(files, source=source, node=node, online=True)
        await asyncio.to_thread(write_manifest, path, manifest)
    except BaseException:
        await asyncio.to_thread(abandon_target, path, created)
        raise
    return manifest


def backup_offline(data_dir: str | os.PathLike[str], out: str | os.PathLike[str]) -> dict[str, Any]:
    """Copy the journal of a data directory no broker holds (the caller holds its lock)."""
    from ferrymq.store.journal import OsFileIO
    from ferrymq.store.journal.segment import NO_HANDLE, SegmentFile, parse_segment_name
    from ferrymq.store.journal.snapshot import pin_segments, write_and_release

    data = Path(data_dir).absolute()
    journal_dir = data / JOURNAL
    segments = []
    for name in sorted(os.listdir(journal_dir)):
        seq = parse_segment_name(name)
        if seq is not None:
            seg_path = journal_dir / name
            segments.append(SegmentFile(seq, str(seg_path), NO_HANDLE, seg_path.stat().st_size))
    path, created = prepare_target(Path(out).absolute())
    io = OsFileIO()
    try:
        # The last segment is the head the next broker recovers and appends to:
        # copy it; the sealed ones are never written again, so links are safe.
        head = segments[-1].seg_id if segments else 0
        pinned = pin_segments(io, segments, head=head)
        files = write_and_release(io, pinned, str(path / JOURNAL))
        manifest = make_manifest(files, source=str(data), node="", online=False)
        write_manifest(path, manifest)
    except BaseException:
        abandon_target(path, created)
        raise
    return manifest


def backup_data_dir(
    data_dir: str | os.PathLike[str], out: str | os.PathLike[str], *, timeout: float = 600.0
) -> dict[str, Any]:
    """`ferrymq backup`: ask the broker holding ``data_dir`` for a snapshot, or,
    if none does, take the lock and copy offline. Returns the manifest."""
    from ferrymq.ha.file_lock import FileLock
    from ferrymq.server.broker_info import read_broker_info

    data = Path(data_dir).absolute()
    target = Path(out).absolute()
    if not data.is_dir():
        raise BackupError(f"no such data directory: {data}")
    if not (data / JOURNAL).is_dir():
        raise BackupError(f"{data} is not a ferrymq data directory (it has no {JOURNAL}/)")
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise BackupTargetNotEmpty(f"backup target {target} exists and is not an empty directory")
    lock = FileLock(data)
    if lock.try_acquire("backup"):
        try:
            return backup_offline(data, target)
        finally:
            lock.release()
    holder = lock.holder()
    info = read_broker_info(data)
    if info is None or holder.split(" ", 1)[0] != str(info.pid):
        raise BackupError(
            f"a broker holds {data} (lock: {holder}) but has not published its address"
            f" in {data}/broker.json yet (still starting?): try again"
        )
    if info.http is None:
        raise BackupError(
            f"the broker holding {data} (pid {info.pid}) runs with --http off: an online"
            " backup needs its HTTP port; enable it, or stop the broker for an offline backup"
        )
    return _post_backup(info.http, target, timeout)


def _post_backup(http: str, target: Path, timeout: float) -> dict[str, Any]:
    import urllib.error
    import urllib.request

    host, _, port = http.rpartition(":")
    if host in ("", "0.0.0.0"):  # listening on every interface: loopback reaches it
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    url = f"http://{host}:{port}/api/backup"
    request = urllib.request.Request(
        url,
        data=json.dumps({"path": str(target)}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            manifest: dict[str, Any] = json.load(response)
            return manifest
    except urllib.error.HTTPError as exc:
        try:
            message = json.load(exc).get("error", "")
        except ValueError:
            message = ""
        reason = message or exc.reason
        raise BackupError(f"the broker refused the backup ({exc.code}): {reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise BackupError(f"cannot reach the broker at {url}: {exc}") from None


# -- reading, verifying and restoring ------------------------------------------


def read_manifest(backup: str | os.PathLike[str]) -> dict[str, Any]:
    """Load and check the manifest of a backup directory; BackupError says what is wrong."""
    path = Path(backup)
    if not path.is_dir():
        raise BackupError(f"no such backup directory: {path}")
    try:
        raw = (path / MANIFEST).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BackupError(
            f"{path} is not a ferrymq backup (no {MANIFEST}; an interrupted backup has none)"
        ) from None
    except OSError as exc:
        raise BackupError(f"cannot read {path / MANIFEST}: {exc}") from exc
    try:
        manifest = json.loads(raw)
    except ValueError as exc:
        raise BackupError(f"{path / MANIFEST}: not valid JSON: {exc}") from None
    where = path / MANIFEST
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError(f"{where}: not a ferrymq backup manifest")
    version = manifest.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise BackupError(f"{where}: bad format_version {version!r}")
    if version > FORMAT_VERSION:
        raise BackupError(
            f"{where}: backup format {version} is newer than this ferrymq ({__version__}) knows"
        )
    segments = manifest.get("segments")
    if not isinstance(segments, list):
        raise BackupError(f"{where}: 'segments' must be a list")
    seen: set[str] = set()
    for i, seg in enumerate(segments):
        ok = (
            isinstance(seg, dict)
            and isinstance(seg.get("name"), str)
            and _SEGMENT.match(seg["name"]) is not None  # also rules out paths like ../x
            and isinstance(seg.get("size"), int)
            and not isinstance(seg.get("size"), bool)
            and seg["size"] >= 0
            and isinstance(seg.get("sha256"), str)
            and _SHA256.match(seg["sha256"]) is not None
        )
        if not ok:
            raise BackupError(f"{where}: segment entry {i} is malformed: {seg!r}")
        if seg["name"] in seen or (seen and seg["name"] <= max(seen)):
            raise BackupError(f"{where}: segment {seg['name']} is duplicated or out of order")
        seen.add(seg["name"])
    on_disk = _segment_names(path / JOURNAL)
    if on_disk - seen:
        extra = sorted(on_disk - seen)
        raise BackupError(f"{path / JOURNAL}: segments not in the manifest: {', '.join(extra)}")
    return manifest


def verify_backup(backup: str | os.PathLike[str]) -> dict[str, Any]:
    """Check the manifest and every file's size and SHA-256; return the manifest."""
    manifest = read_manifest(backup)
    journal_dir = Path(backup) / JOURNAL
    for seg in manifest["segments"]:
        _copy_checked(journal_dir / seg["name"], None, seg["size"], seg["sha256"])
    return manifest


def restore(backup: str | os.PathLike[str], data_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """Restore ``backup`` into the empty (or new) data directory ``data_dir``."""
    from ferrymq.ha.file_lock import FileLock

    manifest = read_manifest(backup)
    source = Path(backup) / JOURNAL
    data = Path(data_dir).absolute()
    if data.exists():
        if not data.is_dir():
            raise BackupError(f"data directory {data} exists and is not a directory")
        if any(data.iterdir()):
            raise BackupTargetNotEmpty(
                f"data directory {data} is not empty: restore only into an empty or new"
                " directory (move the old one away first)"
            )
    created = not data.exists()
    # The lock keeps a broker from starting on the directory half-way through.
    lock = FileLock(data)
    if not lock.try_acquire("restore"):
        raise BackupError(f"data directory {data} is in use (lock held by {lock.holder()})")
    tmp = data / ".journal.restoring"
    try:
        tmp.mkdir()
        for seg in manifest["segments"]:
            _copy_checked(source / seg["name"], tmp / seg["name"], seg["size"], seg["sha256"])
        _fsync_dir(tmp)
        os.rename(tmp, data / JOURNAL)
        _fsync_dir(data)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        lock.release()
        if created:
            shutil.rmtree(data, ignore_errors=True)
        else:  # leave the directory as empty as it was
            with contextlib.suppress(OSError):
                lock.path.unlink()
        raise
    lock.release()
    return manifest


def _copy_checked(src: Path, dst: Path | None, size: int, sha256: str) -> None:
    """Copy ``src`` to ``dst`` (None: only read it), checking size and SHA-256."""
    digest = hashlib.sha256()
    got = 0
    try:
        with open(src, "rb") as f, open(dst, "xb") if dst else contextlib.nullcontext() as out:
            while chunk := f.read(_CHUNK):
                digest.update(chunk)
                got += len(chunk)
                if out is not None:
                    out.write(chunk)
            if out is not None:
                out.flush()
                os.fsync(out.fileno())
    except FileNotFoundError:
        raise BackupError(f"{src}: listed in the manifest but missing") from None
    if got != size:
        raise BackupError(f"{src}: {got} bytes, the manifest says {size}: the backup is damaged")
    if digest.hexdigest() != sha256:
        raise BackupError(f"{src}: SHA-256 does not match the manifest: the backup is damaged")


def _segment_names(directory: Path) -> set[str]:
    try:
        return {n for n in os.listdir(directory) if _SEGMENT.match(n)}
    except FileNotFoundError:
        return set()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
