"""The bench's command line, parsed into one frozen `Workload`.

Option names follow RabbitMQ PerfTest and the OpenMessaging Benchmark where
they have an equivalent (producers, consumers, size, rate), so figures can be
compared across tools without a glossary.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from ferrymq.bench.payload import STAMP_SIZE

__all__ = ["ACK_MODES", "BACKLOG_RECEIPT_EVERY", "Workload", "build_parser", "parse_workload"]

ACK_MODES = ("auto", "client", "client-individual")

# Destinations whose every subscriber gets its own copy of each message:
# STOMP topics (ActiveMQ, ferrymq, RabbitMQ) and RabbitMQ's /exchange/ form.
_PUBSUB_PREFIXES = ("/topic/", "/exchange/")

# Bytes one write should carry when --batch is not given: large enough that
# the syscall is amortised over many frames, small enough to stay well under
# a socket buffer, so backpressure is noticed between batches.
_BATCH_BYTES = 64 * 1024

# --receipt-every when --backlog does not say: the producers' window while
# they fill the backlog, so the produce phase ends at the broker's word.
BACKLOG_RECEIPT_EVERY = 1000


@dataclass(frozen=True, slots=True, kw_only=True)
class Workload:
    """Everything that defines one bench run. Defaults match the CLI's."""

    host: str = "127.0.0.1"
    port: int = 61613
    login: str | None = None
    passcode: str | None = None
    vhost: str | None = None
    stomp_version: str = "1.0,1.1,1.2"
    producers: int = 1
    consumers: int = 1
    destination: str = "/queue/bench"
    destinations: int = 1
    size: int = 1024
    count: int = 100_000
    persistent: bool = False
    ack: str = "auto"
    prefetch: int = 0
    ack_every: int = 0
    receipt_every: int = 0
    rate: float = 0.0
    warmup: int = 0
    backlog: bool = False
    batch: int = 0
    timeout: float = 120.0
    idle_timeout: float = 10.0
    json_only: bool = False

    def __post_init__(self) -> None:
        problems = self.problems()
        if problems:
            raise ValueError("; ".join(problems))

    def problems(self) -> list[str]:
        """Why this workload cannot run (empty when it can)."""
        out = []
        for name in ("producers", "consumers", "destinations", "count"):
            if getattr(self, name) < 1:
                out.append(f"--{name} must be at least 1")
        for name in ("prefetch", "ack_every", "receipt_every", "warmup", "batch"):
            if getattr(self, name) < 0:
                out.append(f"--{name.replace('_', '-')} must not be negative")
        if self.size < STAMP_SIZE:
            out.append(f"--size must be at least {STAMP_SIZE} (the stamp each body carries)")
        if self.ack not in ACK_MODES:
            out.append(f"--ack must be one of {', '.join(ACK_MODES)}")
        if self.rate < 0:
            out.append("--rate must not be negative")
        if self.timeout <= 0 or self.idle_timeout <= 0:
            out.append("--timeout and --idle-timeout must be positive")
        if self.backlog and self.pubsub:
            out.append("--backlog needs a queue: a topic keeps nothing for absent subscribers")
        if self.backlog and self.warmup:
            out.append("--backlog takes no --warmup (run a smaller backlog first instead)")
        if self.consumers < self.destinations:
            out.append("--consumers must be at least --destinations (each needs a subscriber)")
        offered = self.stomp_version.split(",")
        if not offered or not set(offered) <= {"1.0", "1.1", "1.2"}:
            out.append("--stomp-version must list versions among 1.0, 1.1 and 1.2")
        if not 0 < self.port < 65536:
            out.append("--port must be in 1-65535")
        return out

    @property
    def pubsub(self) -> bool:
        """True when every subscriber receives every message of its destination."""
        return self.destination.startswith(_PUBSUB_PREFIXES)

    @property
    def destination_names(self) -> list[str]:
        if self.destinations == 1:
            return [self.destination]
        return [f"{self.destination}.{k}" for k in range(self.destinations)]

    @property
    def frames_per_write(self) -> int:
        """SEND frames per write (the producer's batch)."""
        if self.batch:
            return self.batch
        return max(1, _BATCH_BYTES // (self.size + 100))

    @property
    def cumulative_ack_every(self) -> int:
        """For ack:client, acknowledge after this many messages.

        Half the prefetch, so the broker never runs out of credit waiting for
        an ack; 100 when the prefetch is the broker's (every broker we know
        allows more than that: ActiveMQ and ferrymq 1000, RabbitMQ unbounded).
        """
        if self.ack_every:
            return self.ack_every
        if self.prefetch:
            return max(1, self.prefetch // 2)
        return 100

    def describe(self) -> dict[str, Any]:
        """The workload for the JSON result, without credentials."""
        out = asdict(self)
        for secret in ("login", "passcode", "json_only"):
            del out[secret]
        out["pubsub"] = self.pubsub
        return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ferrymq bench",
        description="Pipelined STOMP load generator: prints one JSON line with "
        "throughput, end-to-end latency and an exactly-once check.",
    )
    conn = p.add_argument_group("connection")
    conn.add_argument("--host", default="127.0.0.1")
    conn.add_argument("--port", type=int, default=61613)
    conn.add_argument("--login", help="CONNECT login")
    conn.add_argument("--passcode", help="CONNECT passcode")
    conn.add_argument("--vhost", help="CONNECT host header (default: --host; RabbitMQ wants '/')")
    conn.add_argument(
        "--stomp-version",
        default="1.0,1.1,1.2",
        metavar="VERSIONS",
        help="CONNECT accept-version, e.g. 1.1 to pin one (default: %(default)s)",
    )
    load = p.add_argument_group("workload")
    load.add_argument("--producers", type=int, default=1, metavar="N")
    load.add_argument("--consumers", type=int, default=1, metavar="M")
    load.add_argument(
        "--destination",
        default="/queue/bench",
        help="/queue/... (competing consumers) or /topic/... (each consumer gets every message)",
    )
    load.add_argument(
        "--destinations",
        type=int,
        default=1,
        metavar="K",
        help="spread over K destinations named DESTINATION.0 .. DESTINATION.K-1; "
        "producer i and consumer j use number i %% K and j %% K",
    )
    load.add_argument("--size", type=int, default=1024, metavar="BYTES", help="body size")
    load.add_argument("--count", type=int, default=100_000, help="messages, all producers")
    load.add_argument("--persistent", action="store_true", help="send persistent:true")
    load.add_argument("--ack", choices=ACK_MODES, default="auto")
    load.add_argument(
        "--prefetch",
        type=int,
        default=0,
        help="consumer credit, sent as activemq.prefetchSize and prefetch-count "
        "(default: the broker's)",
    )
    load.add_argument(
        "--ack-every",
        type=int,
        default=0,
        metavar="N",
        help="ack:client acks cumulatively every N messages (default: prefetch/2, or 100)",
    )
    load.add_argument(
        "--receipt-every",
        type=int,
        default=None,
        metavar="K",
        help="ask a RECEIPT for every K-th SEND and wait for it before sending more "
        f"(default: 0, or {BACKLOG_RECEIPT_EVERY} with --backlog)",
    )
    load.add_argument(
        "--rate",
        type=float,
        default=0.0,
        metavar="MSGS_PER_S",
        help="total send rate; latency is then measured from each scheduled send time",
    )
    load.add_argument(
        "--warmup", type=int, default=0, metavar="N", help="extra messages first, not measured"
    )
    load.add_argument(
        "--backlog",
        action="store_true",
        help="produce all --count messages first (the broker confirms them all), "
        "then subscribe the consumers and drain",
    )
    load.add_argument(
        "--batch", type=int, default=0, metavar="N", help="SEND frames per write (default ~64 KiB)"
    )
    run = p.add_argument_group("run")
    run.add_argument("--timeout", type=float, default=120.0, help="give up after this many s")
    run.add_argument(
        "--idle-timeout",
        type=float,
        default=10.0,
        help="once sending is done, give up after this many s without a delivery",
    )
    run.add_argument("--json-only", action="store_true", help="no human summary on stderr")
    return p


def parse_workload(argv: Sequence[str]) -> Workload:
    """Parse `argv`; exits with status 2 and a usage message when it is invalid."""
    parser = build_parser()
    ns = parser.parse_args(list(argv))
    if ns.receipt_every is None:
        ns.receipt_every = BACKLOG_RECEIPT_EVERY if ns.backlog else 0
    try:
        return Workload(**vars(ns))
    except ValueError as exc:
        parser.error(str(exc))
