"""`ferrymq bench`: a pipelined STOMP load generator for any STOMP broker.

N producers and M consumers in one process (so their clocks agree) drive
one or more destinations; the run prints one JSON line with throughput,
end-to-end latency percentiles and an exactly-once check, and exits 1 when
a message was lost, duplicated or misrouted, or the run failed.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Sequence
from typing import Any

from ferrymq.bench.options import Workload, parse_workload
from ferrymq.bench.report import json_line, summary
from ferrymq.bench.run import run_bench

__all__ = ["Workload", "main", "run", "run_bench"]


def _loop_factory() -> tuple[str, Callable[[], asyncio.AbstractEventLoop] | None]:
    try:
        import uvloop
    except ImportError:
        return "asyncio", None
    return "uvloop", uvloop.new_event_loop


def run(workload: Workload) -> dict[str, Any]:
    """Run `workload` on a fresh event loop (uvloop when installed)."""
    name, factory = _loop_factory()
    with asyncio.Runner(loop_factory=factory) as runner:
        result = runner.run(run_bench(workload))
    result["client_loop"] = name
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `ferrymq bench` and `python -m ferrymq.bench`."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--"]:
        # `ferrymq bench -- ARGS`: the separator some argument parsers need
        # to pass options through untouched.
        args = args[1:]
    workload = parse_workload(args)
    result = run(workload)
    print(json_line(result), flush=True)
    if not workload.json_only:
        print(summary(result), file=sys.stderr, flush=True)
    return 0 if result["ok"] else 1
