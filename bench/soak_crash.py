"""Soak the kill -9 crash cycle of tests/e2e/test_crash.py for many cycles.

Run: .venv/bin/python bench/soak_crash.py [--cycles N] [--duration SECONDS]
                                          [--seed S] [--data DIR] [--sync POLICY]
Prints a progress line every 10 cycles and one JSON summary line at the end;
exit status 0 when the books balance, 1 otherwise. Not part of the test run.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time

from ferrymq.testing.crash import Ledger, run_crash_cycles


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, help="stop after this many crash cycles")
    parser.add_argument("--duration", type=float, help="stop after this many seconds")
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--data", help="data directory (default: a new temporary one)")
    parser.add_argument("--sync", default="always", help="journal sync policy of the broker")
    ns = parser.parse_args()
    if ns.cycles is None and ns.duration is None:
        ns.cycles = 100
    data = ns.data or tempfile.mkdtemp(prefix="ferrymq-soak-")
    started = time.monotonic()

    def progress(cycle: int, ledger: Ledger) -> None:
        if cycle % 10 == 0:
            with ledger.lock:
                confirmed, acked = len(ledger.confirmed), len(ledger.acked)
            print(
                f"cycle {cycle}: {confirmed} sends and {acked} acks confirmed,"
                f" {time.monotonic() - started:.0f} s",
                file=sys.stderr,
                flush=True,
            )

    report = run_crash_cycles(
        data,
        cycles=ns.cycles,
        duration=ns.duration,
        seed=ns.seed,
        extra_args=["--sync", ns.sync],
        on_cycle=progress,
    )
    for problem in report.problems[:20]:
        print(f"PROBLEM: {problem}", file=sys.stderr)
    print(json.dumps({**report.summary(), "seed": ns.seed, "sync": ns.sync, "data": data}))
    return 0 if not report.problems else 1


if __name__ == "__main__":
    sys.exit(main())
