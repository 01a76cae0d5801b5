"""``overlord demo`` end to end: the embedded devnet, the engine, the executor, a summary."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path


def test_the_demo_detects_liquidates_and_writes_its_summary(tmp_path: Path) -> None:
    summary_path = tmp_path / "summary.json"
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "overlord",
            "demo",
            "--users",
            "400",
            "--json-summary",
            str(summary_path),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )

    assert completed.returncode == 0, completed.stderr[-2000:]
    summary = json.loads(summary_path.read_text())
    assert {"detected", "executed", "reverted", "estimated_net_usd", "realized_net_usd"} <= set(
        summary
    )
    assert summary["executed"] >= 20
    assert summary["reverted"] == summary["failed"] == 0
    assert summary["detected"] == summary["executed"] + summary["skipped"]
    estimated, realized = (
        Decimal(summary["estimated_net_usd"]),
        Decimal(summary["realized_net_usd"]),
    )
    assert realized > 0
    # Only gas separates them: well under a dollar per liquidation on the devnet.
    assert abs(realized - estimated) < summary["executed"]
