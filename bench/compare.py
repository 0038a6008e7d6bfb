"""ferrymq against RabbitMQ and ActiveMQ: the standard workloads, one command.

    .venv/bin/python bench/compare.py [--brokers ferrymq,rabbitmq,activemq]
        [--workloads a,b,c,d,e,f,g] [--runs 3] [--backlog-count 1000000]
        [--out bench/RESULTS.md] [--raw-dir bench/raw] [--quick]

One broker runs at a time. ferrymq is started here, on a fresh data
directory for every workload; RabbitMQ and ActiveMQ by `bench/peers/start.sh
NAME` once for their block of workloads, and stopped by `stop.sh NAME` after
(a broker whose script is missing or fails is skipped, and why is recorded).
Each workload runs once as a warm-up (a fifth of its count), then `--runs`
times, every run on its own destination. A run is `python -m ferrymq.bench`
in a child process while a thread here samples the broker's RSS every 100 ms
and its CPU time is read before and after. A run that lost, duplicated or
misrouted a message, or did not finish, is no figure: its cell says failed.

The section between the markers below in `--out` is replaced (or inserted
after the intro) with the machine, the versions, the commands, a table of
medians with the targets of issue 8, and the raw JSON lines go to
`--raw-dir/compare-DATE.jsonl`. Nothing here imports ferrymq: the bench and
the broker run as child processes of the project's interpreter.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import re
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BEGIN, END = "<!-- compare:begin -->", "<!-- compare:end -->"
BROKERS = ("ferrymq", "rabbitmq", "activemq")
PEERS = BROKERS[1:]
TITLES = {"ferrymq": "ferrymq", "rabbitmq": "RabbitMQ", "activemq": "ActiveMQ"}
# Where each peer's STOMP listener is when start.sh does not say, and what it needs.
PEER_PORTS = {"rabbitmq": 61623, "activemq": 61624}
PEER_AUTH = {"rabbitmq": ("--login", "guest", "--passcode", "guest", "--vhost", "/")}
_START_LINE = re.compile(r"ferrymq (?P<version>\S+) .*stomp=[\d.]+:(?P<port>\d+)")


# -- what runs ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Spec:
    """One standard workload: bench options besides address, destination and count."""

    key: str
    title: str
    args: tuple[str, ...]
    count: int
    kind: str = "queue"
    timeout: float = 600.0


WORKLOADS = {s.key: s for s in (
    Spec("a", "queue 1 -> 1, non-persistent", (), 100_000),
    Spec("b", "queue 1 -> 1, persistent, RECEIPT every 100 sends",
         ("--persistent", "--receipt-every", "100"), 100_000),
    Spec("c", "topic 1 -> 4 subscribers, non-persistent", ("--consumers", "4"), 100_000, "topic"),
    Spec("d", "queue 1 -> 1, persistent, 2,000 msgs/s fixed rate",
         ("--persistent", "--rate", "2000"), 20_000),
    Spec("e", "4 producers -> 4 queues -> 4 consumers, non-persistent",
         ("--producers", "4", "--consumers", "4", "--destinations", "4"), 100_000),
    Spec("f", "queue 1 -> 1, client-individual ack, prefetch 1000",
         ("--ack", "client-individual", "--prefetch", "1000"), 100_000),
    Spec("g", "backlog: persistent, produced with no consumer, then drained",
         ("--persistent", "--backlog", "--receipt-every", "1000", "--idle-timeout", "60"),
         1_000_000, timeout=3600.0),
)}  # fmt: skip


@dataclass(frozen=True, slots=True, kw_only=True)
class Target:
    """ferrymq's median `op` `factor` x a reference: the best peer's median
    ("best"), one peer's ("rabbitmq"), another ferrymq figure ("ferrymq:a.msgs_per_s")
    or the number itself ("value")."""

    op: str
    factor: float = 1.0
    against: str = "best"
    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Metric:
    workload: str
    label: str
    key: str
    higher_is_better: bool = True
    digits: int = 0
    target: Target | None = None


NONE = "-"  # a cell without a figure
_X12 = Target(op=">=", factor=1.2, text=">= 1.2x best peer")
METRICS = (
    Metric(workload="a", label="msgs/s", key="msgs_per_s", target=_X12),
    Metric(
        workload="a", label="broker CPU µs/msg", key="cpu_us_per_msg", higher_is_better=False,
        digits=1,
    ),
    Metric(
        workload="a", label="broker peak RSS MiB", key="rss_mib", higher_is_better=False,
        target=Target(op="<", factor=0.5, against="rabbitmq", text="< 0.5x RabbitMQ"),
    ),
    Metric(workload="b", label="msgs/s", key="msgs_per_s", target=_X12),
    Metric(workload="b", label="p99 latency ms", key="p99_ms", higher_is_better=False, digits=1),
    Metric(workload="c", label="deliveries/s", key="msgs_per_s", target=_X12),
    Metric(workload="d", label="p50 latency ms", key="p50_ms", higher_is_better=False, digits=2),
    Metric(
        workload="d", label="p99 latency ms", key="p99_ms", higher_is_better=False, digits=2,
        target=Target(op="<=", text="<= best peer"),
    ),
    Metric(workload="d", label="max latency ms", key="max_ms", higher_is_better=False, digits=2),
    Metric(workload="e", label="msgs/s", key="msgs_per_s", target=_X12),
    Metric(workload="f", label="msgs/s", key="msgs_per_s", target=_X12),
    Metric(workload="g", label="produce msgs/s", key="produce_msgs_per_s"),
    Metric(
        workload="g", label="drain msgs/s", key="drain_msgs_per_s",
        target=Target(
            op=">=", factor=0.8, against="ferrymq:a.msgs_per_s", text=">= 0.8x ferrymq's (a)"
        ),
    ),
    Metric(
        workload="g", label="broker peak RSS MiB", key="rss_mib", higher_is_better=False,
        target=Target(op="<", factor=400, against="value", text="< 400 MiB"),
    ),
)  # fmt: skip


# -- the pure part: runs -> medians -> table ---------------------------------------


def measures(record: Mapping[str, Any]) -> dict[str, float]:
    """The figures of one run record (its bench result plus the broker samples)."""
    result = record["result"]
    out = {"msgs_per_s": float(result["msgs_per_s"])}
    for name, value in (result.get("latency_ms") or {}).items():
        out[f"{name}_ms"] = float(value)
    for key in ("produce_msgs_per_s", "drain_msgs_per_s"):
        if key in result:
            out[key] = float(result[key])
    if record.get("broker_cpu_s") is not None and result["received"]:
        out["cpu_us_per_msg"] = record["broker_cpu_s"] / result["received"] * 1e6
    if record.get("broker_rss_mib") is not None:
        out["rss_mib"] = float(record["broker_rss_mib"])
    return out


@dataclass(frozen=True, slots=True)
class Cell:
    """One broker's medians for one workload, or why it has none."""

    values: dict[str, float] = field(default_factory=dict)
    failed: str | None = None


def summarise(records: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str], Cell]:
    """Medians per (broker, workload) over the measured runs (warm-ups, run 0,
    are left out). One failed run fails the cell: a broker that lost a message
    gets no figure. `failed` reads "failed k/N: the first failed run's reason"."""
    groups: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for r in records:
        if r["run"] > 0:
            groups.setdefault((r["broker"], r["workload"]), []).append(r)
    out = {}
    for key, runs in groups.items():
        bad = [r for r in runs if not r["ok"]]
        if bad:
            out[key] = Cell(failed=f"failed {len(bad)}/{len(runs)}: {bad[0]['reason']}")
            continue
        figures = [measures(r) for r in runs]
        names = set().union(*figures)
        out[key] = Cell(
            {k: statistics.median(f[k] for f in figures if k in f) for k in sorted(names)}
        )
    return out


def value(
    cells: Mapping[tuple[str, str], Cell], broker: str, workload: str, key: str
) -> float | None:
    cell = cells.get((broker, workload))
    return None if cell is None else cell.values.get(key)


def best_peer(cells: Mapping[tuple[str, str], Cell], metric: Metric) -> float | None:
    """The best peer median for `metric`, among peers that have one."""
    found = [v for p in PEERS if (v := value(cells, p, metric.workload, metric.key)) is not None]
    if not found:
        return None
    return max(found) if metric.higher_is_better else min(found)


def evaluate(cells: Mapping[tuple[str, str], Cell], metric: Metric) -> bool | None:
    """Whether ferrymq meets `metric`'s target; None when it cannot be told
    (no target, or no reference figure). A ferrymq failure never meets it."""
    target = metric.target
    if target is None:
        return None
    if target.against == "value":
        reference: float | None = 1.0
    elif target.against == "best":
        reference = best_peer(cells, metric)
    elif target.against.startswith("ferrymq:"):
        workload, key = target.against.removeprefix("ferrymq:").split(".", 1)
        reference = value(cells, "ferrymq", workload, key)
    else:
        reference = value(cells, target.against, metric.workload, metric.key)
    ours = value(cells, "ferrymq", metric.workload, metric.key)
    if ours is None:
        return False if ("ferrymq", metric.workload) in cells else None
    if reference is None:
        return None
    bound = target.factor * reference
    return {">=": ours >= bound, "<=": ours <= bound, "<": ours < bound}[target.op]


def _figure(x: float, digits: int) -> str:
    return f"{x:,.{digits}f}"


def table(
    cells: Mapping[tuple[str, str], Cell], workloads: Sequence[str], absent: Mapping[str, str]
) -> list[str]:
    """The Markdown table; `absent` maps a broker that did not run to a short reason."""
    head = ["workload", "metric", *TITLES.values(), "ferrymq / best peer", "target", "met?"]
    lines = ["| " + " | ".join(head) + " |", "| --- | --- | " + "---: | " * 4 + "--- | --- |"]
    for m in METRICS:
        if m.workload not in workloads:
            continue
        row = [m.workload, m.label]
        for b in BROKERS:
            cell = cells.get((b, m.workload))
            if b in absent:
                row.append(absent[b])
            elif cell is None:
                row.append(NONE)
            elif cell.failed is not None:
                row.append(f"**{cell.failed.split(':', 1)[0]}**")  # the reason goes below
            else:
                v = cell.values.get(m.key)
                row.append(NONE if v is None else _figure(v, m.digits))
        ours, best = value(cells, "ferrymq", m.workload, m.key), best_peer(cells, m)
        row.append(f"{ours / best:.2f}x" if ours is not None and best else NONE)
        row.append(m.target.text if m.target else "")
        met = evaluate(cells, m)
        row.append({True: "yes", False: "**no**", None: NONE}[met] if m.target else "")
        lines.append("| " + " | ".join(row) + " |")
    return lines


def splice(text: str, section: str) -> str:
    """`text` with the marked section replaced by `section`, or `section`
    inserted before the first `## ` heading (after the intro) when unmarked."""
    block = f"{BEGIN}\n{section.strip()}\n{END}\n"
    start, end = text.find(BEGIN), text.find(END)
    if start >= 0 and end > start:
        rest = text[end + len(END) :].lstrip("\n")
        return text[:start] + block + ("\n" + rest if rest else "")
    heading = re.search(r"^## ", text, flags=re.M)
    at = heading.start() if heading else len(text)
    before = text[:at].rstrip("\n")
    return (before + "\n\n" if before else "") + block + "\n" + text[at:]


# -- brokers ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Broker:
    name: str
    pid: int
    port: int
    version: str
    auth: tuple[str, ...] = ()
    how: str = ""  # the command that started it


class Skip(Exception):
    """This broker cannot run here; the message says why."""


def python() -> str:
    venv = ROOT / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def shown(cmd: Sequence[str]) -> str:
    """A command as one would type it from the repository root."""
    parts = [os.path.relpath(c, ROOT) if c.startswith(str(ROOT)) else c for c in cmd]
    return shlex.join(parts)


@contextlib.contextmanager
def ferrymq() -> Iterator[Broker]:
    """`ferrymq serve` on a free port and a fresh data directory; SIGTERM after."""
    script = Path(python()).parent / "ferrymq"
    exe = [str(script)] if script.exists() else [python(), "-m", "ferrymq"]
    with tempfile.TemporaryDirectory(prefix="ferrymq-compare-") as data:
        cmd = [*exe, "serve", "--stomp", "127.0.0.1:0", "--http", "off", "--data", data]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        tail: deque[str] = deque(maxlen=30)
        started: list[re.Match[str]] = []
        ready = threading.Event()

        def pump() -> None:  # read to the end, or a full pipe would stall the broker
            assert proc.stdout is not None
            for line in proc.stdout:
                tail.append(line)
                if not started and (m := _START_LINE.search(line)):
                    started.append(m)
                    ready.set()
            ready.set()

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        try:
            if not ready.wait(60) or not started:
                raise Skip("ferrymq did not start: " + "".join(tail).strip()[-500:])
            m = started[0]
            how = shown(cmd[:-1]) + " DIR  # a fresh DIR per workload"
            yield Broker(
                name="ferrymq", pid=proc.pid, port=int(m["port"]), version=m["version"], how=how
            )
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            reader.join(10)
            assert proc.stdout is not None
            proc.stdout.close()


def _peer_script(name: str) -> Path:
    return ROOT / "bench" / "peers" / name


def _peers_dir() -> Path:
    return Path(os.environ.get("FERRYMQ_PEERS_DIR", "/tmp/ferrymq-peers"))


def _dpkg_version(package: str) -> str:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        done = subprocess.run(
            ["dpkg-query", "-W", "-f", "${Version}", package], capture_output=True, text=True
        )
        if done.returncode == 0:
            return done.stdout.strip()
    return "unknown"


@contextlib.contextmanager
def peer(name: str) -> Iterator[Broker]:
    """`bench/peers/start.sh NAME` ... `stop.sh NAME`. A peer that is already
    running is someone else's (and its store is not fresh): skipped, left alone."""
    start, stop = _peer_script("start.sh"), _peer_script("stop.sh")
    if not start.exists():
        raise Skip(f"no {os.path.relpath(start, ROOT)}")
    pid_file = _peers_dir() / f"{name}.pid"
    with contextlib.suppress(OSError, ValueError):
        if alive(int(pid_file.read_text().strip())):
            raise Skip(f"already running ({pid_file}), not started here: stop it first")
    try:
        done = subprocess.run(
            ["bash", str(start), name], capture_output=True, text=True, timeout=600
        )
        if done.returncode != 0:
            last = (done.stderr.strip() or done.stdout.strip()).splitlines()[-1:] or [""]
            raise Skip(f"start.sh {name} exited {done.returncode}: {last[0][:200]}")
        line = next((x for x in done.stdout.splitlines() if x.startswith(f"{name} ")), "")
        fields = dict(re.findall(r"(\w+)=(\S+)", line))
        pid = pid_file.read_text().strip() if pid_file.exists() else fields.get("pid", "")
        if not pid.isdigit():
            raise Skip(f"start.sh {name} gave no broker pid (output: {done.stdout.strip()[:200]})")
        port = int(fields.get("stomp", f":{PEER_PORTS[name]}").rsplit(":", 1)[1])
        version = fields.get("version") or _dpkg_version(
            "rabbitmq-server" if name == "rabbitmq" else name
        )
        yield Broker(
            name=name,
            pid=int(pid),
            port=port,
            version=version,
            auth=PEER_AUTH.get(name, ()),
            how=shown(["bench/peers/start.sh", name]),
        )
    finally:
        if stop.exists():
            subprocess.run(["bash", str(stop), name], capture_output=True, timeout=600)


# -- one run --------------------------------------------------------------------------------


def _cpu_seconds(pid: int) -> float | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()  # fields 3.. of proc(5); the name may hold spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def alive(pid: int) -> bool:
    """The process exists and has not exited (a zombie has)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def _rss_kib(pid: int) -> int | None:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return None


class Sampler:
    """The broker's peak RSS (VmRSS every 100 ms: VmHWM counts from process start)
    and its CPU seconds, over a `with` block."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_kib = 0
        self.cpu_s: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._cpu0: float | None = None

    def _sample(self) -> None:
        while True:
            self.peak_kib = max(self.peak_kib, _rss_kib(self.pid) or 0)
            if self._stop.wait(0.1):
                return

    def __enter__(self) -> Sampler:
        self._cpu0 = _cpu_seconds(self.pid)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        cpu1 = _cpu_seconds(self.pid)
        self._stop.set()
        self._thread.join()
        if self._cpu0 is not None and cpu1 is not None:
            self.cpu_s = cpu1 - self._cpu0


def bench_command(spec: Spec, broker: Broker, count: int, destination: str) -> list[str]:
    return [
        python(), "-m", "ferrymq.bench", "--host", "127.0.0.1", "--port", str(broker.port),
        *broker.auth, "--destination", destination, "--count", str(count), "--size", "1024",
        "--stomp-version", "1.2", *spec.args, "--timeout", f"{spec.timeout:g}", "--json-only",
    ]  # fmt: skip


def run_once(spec: Spec, broker: Broker, count: int, run: int, tag: str) -> dict[str, Any]:
    """One bench run (run 0: the warm-up) as a raw record."""
    destination = f"/{spec.kind}/bench.{spec.key}.{tag}.{run}"
    cmd = bench_command(spec, broker, count, destination)
    record: dict[str, Any] = {"broker": broker.name, "workload": spec.key, "run": run}
    record["broker_pid"] = broker.pid
    record["command"] = shown(cmd)
    result: dict[str, Any] | None = None
    reason = None
    if not alive(broker.pid):
        record |= {"ok": False, "reason": f"the broker (pid {broker.pid}) had exited"}
        return record | {"broker_cpu_s": None, "broker_rss_mib": None, "result": None}
    with Sampler(broker.pid) as sampler:
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=spec.timeout + 120)
            lines = done.stdout.strip().splitlines()
            result = json.loads(lines[-1]) if lines else None
            if result is None:
                reason = f"no result (exit {done.returncode}): {done.stderr.strip()[-300:]}"
        except subprocess.TimeoutExpired:
            reason = f"the bench did not end within {spec.timeout + 120:g} s"
        except json.JSONDecodeError as exc:
            reason = f"unreadable result: {exc}"
    if result is not None and not result["ok"]:
        reason = result["error"] or (
            f"lost {result['lost']}, duplicates {result['duplicates']}, "
            f"unexpected {result['unexpected']}"
        )
    if reason is not None and not alive(broker.pid):
        reason += f" (the broker, pid {broker.pid}, exited)"
    record["ok"] = reason is None
    record["reason"] = reason
    record["broker_cpu_s"] = None if sampler.cpu_s is None else round(sampler.cpu_s, 3)
    record["broker_rss_mib"] = round(sampler.peak_kib / 1024, 1) if sampler.peak_kib else None
    record["result"] = result
    return record


# -- the whole comparison -------------------------------------------------------------------


def _sh(*cmd: str) -> str:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT).stdout.strip()
    return ""


def machine() -> list[tuple[str, str]]:
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, flags=re.M)
    mem = re.search(r"^MemTotal:\s*(\d+)", Path("/proc/meminfo").read_text(), flags=re.M)
    return [
        ("`nproc`", str(os.cpu_count())),
        ("CPU", model[1] if model else platform.processor()),
        ("memory", f"{int(mem[1]) / 2**20:.1f} GiB" if mem else "?"),
        ("kernel", platform.release()),
        ("`python -V`", _sh(python(), "-V")),
    ]


def _load() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


def run_all(
    brokers: Sequence[str],
    specs: Sequence[Spec],
    runs: int,
    raw: Path,
    log: Any = sys.stderr,
) -> tuple[list[dict[str, Any]], dict[str, Broker], dict[str, str]]:
    """Every workload on every broker in turn; returns (records, brokers that ran,
    brokers skipped -> why). Records are appended to `raw` as they come."""
    records: list[dict[str, Any]] = []
    ran: dict[str, Broker] = {}
    skipped: dict[str, str] = {}
    tag = datetime.datetime.now().strftime("%m%d%H%M%S")
    raw.parent.mkdir(parents=True, exist_ok=True)
    with raw.open("a") as sink:
        for name in brokers:
            # ferrymq: a fresh process and data directory per workload; a peer: one start.
            blocks = [[s] for s in specs] if name == "ferrymq" else [list(specs)]
            for block in blocks:
                try:
                    with ferrymq() if name == "ferrymq" else peer(name) as broker:
                        ran.setdefault(name, broker)
                        for spec in block:
                            for run in range(runs + 1):
                                count = spec.count if run else max(1, spec.count // 5)
                                record = run_once(spec, broker, count, run, tag)
                                records.append(record)
                                sink.write(json.dumps(record) + "\n")
                                sink.flush()
                                print(_progress(record), file=log, flush=True)
                                time.sleep(1)  # let the broker settle between runs
                except Skip as exc:
                    skipped[name] = str(exc)
                    print(f"[{name}] skipped: {exc}", file=log, flush=True)
                    break
    return records, ran, skipped


def _progress(r: Mapping[str, Any]) -> str:
    run = "warm-up" if r["run"] == 0 else f"run {r['run']}"
    what = f"[{r['broker']} {r['workload']} {run}]"
    if not r["ok"]:
        return f"{what} FAILED: {r['reason']}"
    res = r["result"]
    rates = f"{res['msgs_per_s']:,.0f} msgs/s"
    if "drain_msgs_per_s" in res:
        rates = (
            f"produce {res['produce_msgs_per_s']:,.0f}, drain {res['drain_msgs_per_s']:,.0f} msgs/s"
        )
    return f"{what} ok {rates}, broker RSS {r['broker_rss_mib']} MiB, CPU {r['broker_cpu_s']} s"


def section(
    *,
    records: Sequence[Mapping[str, Any]],
    specs: Sequence[Spec],
    runs: int,
    ran: Mapping[str, Broker],
    skipped: Mapping[str, str],
    requested: Sequence[str],
    host: Sequence[tuple[str, str]],
    argv: Sequence[str],
    raw: Path,
    out_dir: Path,
    when: datetime.datetime,
    load: tuple[str, str],
    quick: bool = False,
) -> str:
    cells = summarise(records)
    absent = {b: "skipped" if b in skipped else "not run" for b in BROKERS if b not in ran}
    commit = _sh("git", "rev-parse", "--short", "HEAD")
    dirty = " plus uncommitted changes" if _sh("git", "status", "--porcelain", "-uno") else ""
    names = ", ".join(TITLES[b] for b in requested)
    smoke = ", `--quick` smoke run: counts / 10, not figures to quote" if quick else ""
    out = [
        f"## {when:%Y-%m-%d %H:%M} UTC: {names}, workloads "
        f"{', '.join(s.key for s in specs)} (`bench/compare.py`{smoke})",
        "",
        textwrap.fill(
            f"Median of {runs} run(s) per workload and broker, after one warm-up run (a "
            "fifth of the count); every run on its own destination, 1 KiB bodies, STOMP "
            "1.2. A run that lost, duplicated or misrouted a message, or did not finish, "
            "gives no figure: its cell says failed. Broker RSS is the peak of VmRSS "
            "sampled every 100 ms during the run; broker CPU is utime + stime over the "
            "run, per delivery. One broker runs at a time, on the same machine as the "
            "bench.",
            width=78,
        ),
        "",
        "### Machine",
        "",
        "| | |",
        "| --- | --- |",
        *(f"| {k} | {v} |" for k, v in host),
        f"| load average (1/5/15 min) | before {load[0]}, after {load[1]} |",
        "",
        "### Versions",
        "",
        "| | |",
        "| --- | --- |",
        *(f"| {TITLES[b]} | {ran[b].version} |" for b in BROKERS if b in ran),
        f"| ferrymq commit | `{commit}`{dirty} |",
        "",
        "### Commands",
        "",
        "```",
        f"{shown([python(), 'bench/compare.py', *argv])}",
        *(f"# {TITLES[b]}: {ran[b].how}" for b in BROKERS if b in ran),
        *(
            f"# {TITLES[b]}: the same runs with "
            + shlex.join(["--port", str(ran[b].port), *ran[b].auth])
            for b in PEERS
            if b in ran
        ),
    ]
    for spec in specs:
        cmd = next((r["command"] for r in records if r["workload"] == spec.key and r["run"]), "")
        out += [f"# {spec.key}: {spec.title}", cmd or "(not run)"]
    out += ["```", "", "### Figures", "", *table(cells, [s.key for s in specs], absent), ""]
    for b, why in skipped.items():
        out.append(f"- {TITLES[b]} skipped: {why}")
    for b in requested:
        for s in specs:
            cell = cells.get((b, s.key))
            if cell is not None and cell.failed is not None:
                out.append(f"- {TITLES[b]}, workload {s.key}: {cell.failed}")
    out += [
        "",
        f"Raw JSON lines of every run, warm-ups included: `{os.path.relpath(raw, out_dir)}`.",
    ]
    return "\n".join(out)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--brokers", default=",".join(BROKERS))
    p.add_argument("--workloads", default=",".join(WORKLOADS))
    p.add_argument(
        "--runs", type=int, default=None, help="measured runs (default 3, 1 with --quick)"
    )
    p.add_argument("--backlog-count", type=int, default=1_000_000, help="messages in workload g")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "RESULTS.md")
    p.add_argument("--raw-dir", type=Path, default=ROOT / "bench" / "raw")
    p.add_argument("--quick", action="store_true", help="a smoke run: counts / 10, one run")
    ns = p.parse_args(list(argv))
    for name, allowed in (("brokers", BROKERS), ("workloads", tuple(WORKLOADS))):
        chosen = getattr(ns, name).split(",")
        if not chosen or not set(chosen) <= set(allowed):
            p.error(f"--{name} takes a comma-separated subset of {','.join(allowed)}")
        setattr(ns, name, chosen)
    if ns.runs is None:
        ns.runs = 1 if ns.quick else 3
    if ns.runs < 1 or ns.backlog_count < 1:
        p.error("--runs and --backlog-count must be at least 1")
    return ns


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    ns = parse_args(args)
    specs = []
    for key in ns.workloads:
        spec = WORKLOADS[key]
        if key == "g":
            spec = replace(spec, count=ns.backlog_count)
        if ns.quick:
            spec = replace(spec, count=max(10, spec.count // 10))
        specs.append(spec)
    when = datetime.datetime.now(datetime.UTC)
    raw = ns.raw_dir / f"compare-{when:%Y-%m-%dT%H%M}{'-quick' if ns.quick else ''}.jsonl"
    load_before = _load()
    records, ran, skipped = run_all(ns.brokers, specs, ns.runs, raw)
    text = section(
        records=records,
        specs=specs,
        runs=ns.runs,
        ran=ran,
        skipped=skipped,
        requested=ns.brokers,
        host=machine(),
        argv=args,
        raw=raw,
        out_dir=ns.out.resolve().parent,
        when=when,
        load=(load_before, _load()),
        quick=ns.quick,
    )
    old = ns.out.read_text() if ns.out.exists() else ""
    ns.out.write_text(splice(old, text))
    print(text)
    ours = [r for r in records if r["broker"] == "ferrymq" and r["run"]]
    return 0 if ours and all(r["ok"] for r in ours) else 1


if __name__ == "__main__":
    sys.exit(main())
