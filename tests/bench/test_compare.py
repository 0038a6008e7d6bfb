"""`bench/compare.py`: medians, targets, the RESULTS.md section; no peer broker needed."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_compare", ROOT / "bench" / "compare.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


compare = _load()


def record(
    broker: str,
    workload: str,
    run: int,
    msgs_per_s: float,
    *,
    ok: bool = True,
    p99: float = 1.0,
    cpu: float | None = 1.0,
    rss: float | None = 100.0,
    **extra: float,
) -> dict[str, Any]:
    result = {
        "msgs_per_s": msgs_per_s,
        "received": 100_000,
        "latency_ms": {"p50": p99 / 2, "p99": p99, "max": p99 * 2},
        "ok": ok,
        **extra,
    }
    return {
        "broker": broker,
        "workload": workload,
        "run": run,
        "ok": ok,
        "reason": None if ok else "lost 3, duplicates 0, unexpected 0",
        "broker_cpu_s": cpu,
        "broker_rss_mib": rss,
        "result": result,
    }


def metric(workload: str, key: str) -> Any:
    return next(m for m in compare.METRICS if m.workload == workload and m.key == key)


def test_measures_of_one_run() -> None:
    r = record("ferrymq", "g", 1, 50_000, p99=4.0, cpu=2.0, rss=210.5, drain_msgs_per_s=40_000.0)
    m = compare.measures(r)
    assert m["msgs_per_s"] == 50_000
    assert m["p99_ms"] == 4.0 and m["max_ms"] == 8.0
    assert m["cpu_us_per_msg"] == pytest.approx(20.0)  # 2 s over 100k deliveries
    assert m["rss_mib"] == 210.5
    assert m["drain_msgs_per_s"] == 40_000
    assert "cpu_us_per_msg" not in compare.measures(record("x", "a", 1, 1, cpu=None))


def test_medians_per_column_without_the_warmup() -> None:
    records = [
        record("ferrymq", "a", 0, 1.0, p99=100),  # the warm-up: left out
        record("ferrymq", "a", 1, 30_000, p99=3),
        record("ferrymq", "a", 2, 50_000, p99=1),
        record("ferrymq", "a", 3, 40_000, p99=2, rss=300),
    ]
    cells = compare.summarise(records)
    cell = cells[("ferrymq", "a")]
    assert cell.failed is None
    assert cell.values["msgs_per_s"] == 40_000
    assert cell.values["p99_ms"] == 2
    assert cell.values["rss_mib"] == 100


def test_one_failed_run_fails_the_cell() -> None:
    records = [
        record("rabbitmq", "a", 1, 30_000),
        record("rabbitmq", "a", 2, 90_000, ok=False),
        record("rabbitmq", "a", 3, 40_000),
    ]
    cell = compare.summarise(records)[("rabbitmq", "a")]
    assert cell.values == {}
    assert cell.failed == "failed 1/3: lost 3, duplicates 0, unexpected 0"


def cells_of(*figures: tuple[str, str, dict[str, float]]) -> dict[tuple[str, str], Any]:
    return {(b, w): compare.Cell(values) for b, w, values in figures}


def test_throughput_target_against_the_best_peer() -> None:
    m = metric("a", "msgs_per_s")
    peers = [
        ("rabbitmq", "a", {"msgs_per_s": 20_000.0}),
        ("activemq", "a", {"msgs_per_s": 30_000.0}),
    ]
    assert compare.best_peer(cells_of(*peers), m) == 30_000
    assert compare.evaluate(cells_of(("ferrymq", "a", {"msgs_per_s": 36_000.0}), *peers), m)
    assert not compare.evaluate(cells_of(("ferrymq", "a", {"msgs_per_s": 35_999.0}), *peers), m)


def test_a_failed_peer_is_not_the_best_peer_and_no_peer_means_no_verdict() -> None:
    m = metric("c", "msgs_per_s")
    cells = cells_of(
        ("ferrymq", "c", {"msgs_per_s": 25_000.0}), ("rabbitmq", "c", {"msgs_per_s": 20_000.0})
    )
    cells[("activemq", "c")] = compare.Cell(failed="failed 1/3: timed out")
    assert compare.best_peer(cells, m) == 20_000
    assert compare.evaluate(cells, m) is True
    assert compare.evaluate(cells_of(("ferrymq", "c", {"msgs_per_s": 1.0})), m) is None


def test_a_failed_ferrymq_never_meets_a_target() -> None:
    m = metric("e", "msgs_per_s")
    cells = cells_of(("rabbitmq", "e", {"msgs_per_s": 1.0}))
    cells[("ferrymq", "e")] = compare.Cell(failed="failed 1/3: lost 1")
    assert compare.evaluate(cells, m) is False


def test_latency_target_takes_the_lowest_peer() -> None:
    m = metric("d", "p99_ms")
    peers = [("rabbitmq", "d", {"p99_ms": 5.0}), ("activemq", "d", {"p99_ms": 9.0})]
    assert compare.evaluate(cells_of(("ferrymq", "d", {"p99_ms": 5.0}), *peers), m) is True
    assert compare.evaluate(cells_of(("ferrymq", "d", {"p99_ms": 6.0}), *peers), m) is False


def test_rss_against_rabbitmq_alone() -> None:
    m = metric("a", "rss_mib")
    peers = [("rabbitmq", "a", {"rss_mib": 200.0}), ("activemq", "a", {"rss_mib": 120.0})]
    assert compare.evaluate(cells_of(("ferrymq", "a", {"rss_mib": 99.0}), *peers), m) is True
    assert compare.evaluate(cells_of(("ferrymq", "a", {"rss_mib": 100.0}), *peers), m) is False
    # Only RabbitMQ is the reference: without it there is no verdict.
    assert compare.evaluate(cells_of(("ferrymq", "a", {"rss_mib": 1.0}), peers[1]), m) is None


def test_backlog_targets_against_ferrymq_itself_and_a_fixed_bound() -> None:
    drain, rss = metric("g", "drain_msgs_per_s"), metric("g", "rss_mib")
    a = ("ferrymq", "a", {"msgs_per_s": 50_000.0})
    fast = ("ferrymq", "g", {"drain_msgs_per_s": 40_000.0, "rss_mib": 399.0})
    slow = ("ferrymq", "g", {"drain_msgs_per_s": 39_999.0, "rss_mib": 400.0})
    assert compare.evaluate(cells_of(a, fast), drain) is True
    assert compare.evaluate(cells_of(a, slow), drain) is False
    assert compare.evaluate(cells_of(fast), drain) is None  # (a) not run
    assert compare.evaluate(cells_of(fast), rss) is True
    assert compare.evaluate(cells_of(slow), rss) is False


def test_table_rows() -> None:
    cells = cells_of(
        ("ferrymq", "a", {"msgs_per_s": 60_000.0, "cpu_us_per_msg": 20.04, "rss_mib": 43.0}),
        ("rabbitmq", "a", {"msgs_per_s": 20_000.0, "cpu_us_per_msg": 40.0, "rss_mib": 150.0}),
    )
    lines = compare.table(cells, ["a"], {"activemq": "skipped"})
    assert lines[0].startswith("| workload | metric | ferrymq | RabbitMQ | ActiveMQ |")
    assert len(lines) == 2 + 3
    assert lines[2] == (
        "| a | msgs/s | 60,000 | 20,000 | skipped | 3.00x | >= 1.2x best peer | yes |"
    )
    assert lines[3] == "| a | broker CPU µs/msg | 20.0 | 40.0 | skipped | 0.50x |  |  |"
    assert lines[4].endswith("| 0.29x | < 0.5x RabbitMQ | yes |")
    cells[("rabbitmq", "a")] = compare.Cell(failed="failed 3/3: timed out after 600 s")
    row = compare.table(cells, ["a"], {})[2]
    assert "| **failed 3/3** |" in row
    assert row.endswith("| - | >= 1.2x best peer | - |")


def test_splice_replaces_the_marked_section() -> None:
    text = f"# Bench results\n\nintro\n\n{compare.BEGIN}\nold\n{compare.END}\n\n## older\n"
    out = compare.splice(text, "## new\n\nfigures\n")
    assert out == (
        f"# Bench results\n\nintro\n\n{compare.BEGIN}\n## new\n\nfigures\n{compare.END}\n"
        "\n## older\n"
    )
    assert compare.splice(out, "## newer") == out.replace("## new\n\nfigures", "## newer")


def test_splice_inserts_after_the_intro() -> None:
    text = "# Bench results\n\nintro\n\n## 2026-11-22: older\n\nbody\n"
    out = compare.splice(text, "## new")
    assert out == (
        f"# Bench results\n\nintro\n\n{compare.BEGIN}\n## new\n{compare.END}\n\n"
        "## 2026-11-22: older\n\nbody\n"
    )
    assert compare.splice("", "## new") == f"{compare.BEGIN}\n## new\n{compare.END}\n\n"


def test_options() -> None:
    ns = compare.parse_args(["--quick", "--brokers", "ferrymq", "--workloads", "a,g"])
    assert (ns.runs, ns.brokers, ns.workloads) == (1, ["ferrymq"], ["a", "g"])
    assert compare.parse_args([]).runs == 3
    with pytest.raises(SystemExit):
        compare.parse_args(["--brokers", "ferrymq,kafka"])


# -- the peers' start/stop interface, with stand-in scripts ---------------------------


def fake_peers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, start: str) -> Path:
    scripts = tmp_path / "peers"
    scripts.mkdir()
    (scripts / "start.sh").write_text(start)
    (scripts / "stop.sh").write_text('echo "$1" >> "$FERRYMQ_PEERS_DIR/stopped"\n')
    monkeypatch.setattr(compare, "_peer_script", lambda name: scripts / name)
    monkeypatch.setenv("FERRYMQ_PEERS_DIR", str(tmp_path))
    return tmp_path / "stopped"


def test_a_peer_is_started_read_and_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stopped = fake_peers(
        tmp_path,
        monkeypatch,
        'echo 4321 > "$FERRYMQ_PEERS_DIR/$1.pid"\n'
        'echo "starting..."\n'
        'echo "$1 pid=4321 stomp=127.0.0.1:61623 version=3.10.8"\n',
    )
    with compare.peer("rabbitmq") as broker:
        assert (broker.pid, broker.port, broker.version) == (4321, 61623, "3.10.8")
        assert broker.auth == ("--login", "guest", "--passcode", "guest", "--vhost", "/")
        assert not stopped.exists()
    assert stopped.read_text() == "rabbitmq\n"


def test_a_peer_that_fails_to_start_is_skipped_and_cleaned_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stopped = fake_peers(tmp_path, monkeypatch, 'echo "no java here" >&2; exit 3\n')
    with pytest.raises(compare.Skip, match="exited 3: no java here"), compare.peer("activemq"):
        pass
    assert stopped.read_text() == "activemq\n"


def test_a_peer_already_running_is_left_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stopped = fake_peers(tmp_path, monkeypatch, "exit 99\n")
    (tmp_path / "rabbitmq.pid").write_text(f"{os.getpid()}\n")  # alive: this very process
    with pytest.raises(compare.Skip, match="already running"), compare.peer("rabbitmq"):
        pass
    assert not stopped.exists()


def test_a_missing_start_script_skips_the_peer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compare, "_peer_script", lambda name: ROOT / "no-such-dir" / name)
    with pytest.raises(compare.Skip, match=r"no no-such-dir/start\.sh"), compare.peer("activemq"):
        pass


def test_a_run_against_a_broker_that_has_exited_fails_at_once() -> None:
    proc = subprocess.Popen(["true"])
    proc.wait()
    broker = compare.Broker(name="rabbitmq", pid=proc.pid, port=1, version="3")
    r = compare.run_once(compare.WORKLOADS["a"], broker, 10, 1, "t")
    assert (r["ok"], r["result"]) == (False, None)
    assert r["reason"] == f"the broker (pid {proc.pid}) had exited"
    assert r["command"].endswith(
        "--destination /queue/bench.a.t.1 --count 10 --size 1024 "
        "--stomp-version 1.2 --timeout 600 --json-only"
    )


# -- end to end against ferrymq --------------------------------------------------------


@pytest.mark.e2e
@pytest.mark.slow
def test_quick_run_against_ferrymq(tmp_path: Path) -> None:
    out = tmp_path / "RESULTS.md"
    out.write_text("# Bench results\n\nintro\n\n## older\n")
    argv = ["--brokers", "ferrymq", "--workloads", "a,g", "--quick", "--backlog-count", "5000"]
    argv += ["--out", str(out), "--raw-dir", str(tmp_path / "raw")]
    assert compare.main(argv) == 0
    text = out.read_text()
    assert text.index(compare.BEGIN) < text.index("## older")
    assert "| a | msgs/s |" in text and "| g | drain msgs/s |" in text
    assert "**failed" not in text
    (raw,) = (tmp_path / "raw").iterdir()
    records = [json.loads(line) for line in raw.read_text().splitlines()]
    assert [(r["workload"], r["run"]) for r in records] == [("a", 0), ("a", 1), ("g", 0), ("g", 1)]
    assert all(r["ok"] and r["broker_cpu_s"] >= 0 and r["broker_rss_mib"] > 0 for r in records)
    assert records[1]["broker_cpu_s"] > 0  # 1,000 messages: more than a clock tick
    assert records[3]["result"]["workload"]["count"] == 500
    # A fresh broker per workload, each stopped afterwards.
    pids = {r["broker_pid"] for r in records}
    assert len(pids) == 2
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
