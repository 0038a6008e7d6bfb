"""The run's result on the way out: one JSON line, and a summary for people."""

from __future__ import annotations

import json
from typing import Any

__all__ = ["json_line", "summary"]


def json_line(result: dict[str, Any]) -> str:
    """The machine-readable result: one line, keys in a stable order."""
    return json.dumps(result, separators=(", ", ": "))


def summary(result: dict[str, Any]) -> str:
    """A few lines for stderr: what ran, how fast, and whether it was exactly once."""
    w = result["workload"]
    kind = "topic" if w["pubsub"] else "queue"
    lines = [
        f"ferrymq bench against {result['broker']} at {result['address']}: "
        f"{w['producers']} producer(s) -> {w['consumers']} consumer(s), {kind} "
        f"{w['destination']}, {w['size']} B, "
        f"{'persistent' if w['persistent'] else 'non-persistent'}, ack:{w['ack']}",
        f"  {result['received']} of {result['expected']} deliveries in "
        f"{result['seconds']:.3f} s: {result['msgs_per_s']:,.0f} msgs/s, "
        f"{result['mb_per_s']:.1f} MB/s",
    ]
    if w.get("backlog"):
        lines.append(
            f"  backlog: produced in {result['produce_seconds']:.3f} s "
            f"({result['produce_msgs_per_s']:,.0f} msgs/s, confirmed), drained in "
            f"{result['drain_seconds']:.3f} s ({result['drain_msgs_per_s']:,.0f} msgs/s)"
        )
    latency = result["latency_ms"]
    if latency:
        lines.append(
            f"  latency ms: p50 {latency['p50']:.3f}  p99 {latency['p99']:.3f}  "
            f"p99.9 {latency['p999']:.3f}  max {latency['max']:.3f}"
        )
    receipts = result.get("receipt_latency_ms")
    if receipts:
        lines.append(f"  receipt ms: p50 {receipts['p50']:.3f}  p99 {receipts['p99']:.3f}")
    verdict = "OK" if result["ok"] else "FAILED"
    lines.append(
        f"  {verdict}: lost {result['lost']}, duplicates {result['duplicates']}, "
        f"unexpected {result['unexpected']}, foreign {result['foreign']}"
    )
    if result["error"]:
        lines.append(f"  error: {result['error']}")
    return "\n".join(lines)
