"""Confirmed persistent messages survive SIGKILL of the broker at random moments.

The cycle itself (a producer and a consumer, each with receipts, then a
SIGKILL at a random moment, and the final books) lives in
`ferrymq.testing.crash`, shared with the soak run `bench/soak_crash.py`:
- every message whose SEND receipt the producer got is still in the broker at
  the end, unless the consumer sent an ACK for it;
- no message whose ACK receipt the consumer got is ever delivered again;
- nothing is delivered that was never sent.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ferrymq.testing.crash import Ledger, run_crash_cycles

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CYCLES = int(os.environ.get("CRASH_CYCLES", "20"))


def test_kill_minus_nine_loses_no_confirmed_message(tmp_path: Path) -> None:
    def no_violations(cycle: int, ledger: Ledger) -> None:
        assert not ledger.violations, ledger.violations[:5]

    report = run_crash_cycles(tmp_path, cycles=CYCLES, on_cycle=no_violations)
    assert report.cycles == CYCLES, report.problems[:5]
    assert not report.problems, report.problems[:5]
    assert len(report.ledger.confirmed) > 100, "the test produced too little to mean anything"
