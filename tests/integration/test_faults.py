"""The fault-injection suite's short version (``make faults`` runs all of it)."""

from __future__ import annotations

import json
from pathlib import Path

from overlord.devnet.faults import SHORT, passed, run_suite, summary


def test_the_short_fault_suite_loses_nothing_and_recovers_from_every_fault(
    tmp_path: Path,
) -> None:
    outcomes = run_suite(SHORT, tmp_path)
    totals = summary(outcomes)

    assert [o.fault for o in outcomes] == list(SHORT)
    assert totals["users_checked"] > 0
    assert passed(totals), json.dumps(totals)
