"""The disk's ceiling for group commit: how many write+fsync rounds per second.

Run: .venv/bin/python bench/fsync_ceiling.py [DIR] [SECONDS] [BYTES_PER_WRITE]
Prints one JSON line. Not a test.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time


def main() -> None:
    directory = sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(dir=".")
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 3.0
    size = int(sys.argv[3]) if len(sys.argv) > 3 else 1100
    path = os.path.join(directory, "fsync-ceiling.tmp")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    block = b"x" * size
    rounds = 0
    start = time.perf_counter()
    try:
        while time.perf_counter() - start < seconds:
            os.write(fd, block)
            os.fsync(fd)
            rounds += 1
    finally:
        os.close(fd)
        os.unlink(path)
    elapsed = time.perf_counter() - start
    print(
        json.dumps(
            {
                "fsyncs_per_s": round(rounds / elapsed, 1),
                "bytes_per_write": size,
                "mean_ms": round(elapsed / rounds * 1000, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
