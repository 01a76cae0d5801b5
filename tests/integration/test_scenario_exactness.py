"""Proof: through a whole scenario, our account data equals getUserAccountData everywhere.

A 40-step scenario (price walks, crashes and recoveries, a wstETH ratio change, time jumps
of seconds to a year, user actions and liquidation sweeps) runs on the seeded chain; then
every seeded user is verified at every block the scenario produced, at least 30 of them,
each read back historically at its own block.
"""

from __future__ import annotations

from collections import Counter

from overlord.chain.rpc import JsonRpcClient
from overlord.devnet.launch import Devnet
from overlord.devnet.scenario import run_scenario
from overlord.verify import verify_users

STEPS = 40


def test_every_user_matches_the_pool_at_every_block_of_a_scenario(
    devnet: Devnet, rpc: JsonRpcClient
) -> None:
    records = run_scenario(rpc, devnet.manifest, devnet.users, steps=STEPS, seed=2024)
    blocks = sorted({record.block_number for record in records})

    reports = [verify_users(rpc, devnet.manifest.pool, devnet.users, block) for block in blocks]

    kinds = Counter(record.kind for record in records)
    assert len(blocks) >= 30
    assert sum(record.liquidations for record in records) > 0, kinds
    assert all(report.users_checked == len(devnet.users) for report in reports)
    mismatches = [(report.block, m.user) for report in reports for m in report.mismatches]
    assert mismatches == []
