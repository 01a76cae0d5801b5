"""``verify_users``, user discovery and ``overlord verify`` against the real contracts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from overlord.aave import ProtocolVersion
from overlord.chain.rpc import JsonRpcClient
from overlord.devnet.launch import Devnet
from overlord.verify import ACCOUNT_FIELDS, discover_users, verify_command, verify_users
from tests.integration.test_reader import (
    PLANS,
    THIRTY_DAYS,
    Plan,
    all_users,
    build_users,
    head,
    jump,
    user_address,
)

runner = CliRunner()


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command()(verify_command)
    return app


def _verify(devnet: Devnet, *args: str) -> Any:
    base = ["--rpc-url", devnet.rpc_url, "--manifest", str(devnet.manifest_path)]
    return runner.invoke(_app(), [*base, *args], env={})


def test_every_user_matches_get_user_account_data(devnet: Devnet, rpc: JsonRpcClient) -> None:
    users = all_users(devnet, build_users(rpc, devnet.manifest))
    jump(rpc, THIRTY_DAYS)
    block = head(rpc)

    report = verify_users(rpc, devnet.manifest.pool, users, block)

    assert report.mismatches == ()
    assert report.users_checked == len(users)
    assert (report.block, report.ok) == (block, True)


def test_discovery_finds_every_user_with_a_position(devnet: Devnet, rpc: JsonRpcClient) -> None:
    built = build_users(rpc, devnet.manifest)
    provider = devnet.manifest.accounts["liquidity_provider"].lower()

    found = discover_users(rpc, devnet.manifest.pool, devnet.manifest.deployment_block, head(rpc))

    assert set(built) | {provider} | {u.lower() for u in devnet.users} <= set(found)
    assert len(found) == len(set(found))


def test_discovery_in_tiny_chunks_finds_the_same_users(devnet: Devnet, rpc: JsonRpcClient) -> None:
    build_users(rpc, devnet.manifest)
    pool, first, last = devnet.manifest.pool, devnet.manifest.deployment_block, head(rpc)

    assert discover_users(rpc, pool, first, last, chunk_size=3) == discover_users(
        rpc, pool, first, last
    )


def test_the_command_prints_one_json_object_and_exits_0(devnet: Devnet, rpc: JsonRpcClient) -> None:
    build_users(rpc, devnet.manifest)

    result = _verify(devnet, "--json")

    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert set(document) == {"users_checked", "mismatches", "block"}
    assert document["mismatches"] == []
    assert document["block"] == head(rpc)
    assert document["users_checked"] >= len(PLANS) - 2


def test_the_dump_has_one_line_per_user_with_both_outputs(
    devnet: Devnet, rpc: JsonRpcClient, tmp_path: Path
) -> None:
    built = build_users(rpc, devnet.manifest)
    dump = tmp_path / "dump.jsonl"

    result = _verify(devnet, "--dump", str(dump))

    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in dump.read_text().splitlines()]
    assert {line["user"] for line in lines} >= set(built)
    for line in lines:
        assert set(line) == {"user", "block", "ours", "chain"}
        assert line["block"] == head(rpc)
        assert list(line["ours"]) == list(ACCOUNT_FIELDS)
        assert all(isinstance(value, int) for value in line["ours"].values())
        assert line["ours"] == line["chain"]


def test_the_readable_output_counts_the_users_and_the_time(
    devnet: Devnet, rpc: JsonRpcClient, tmp_path: Path
) -> None:
    built = build_users(rpc, devnet.manifest)
    addresses = tmp_path / "users.txt"
    addresses.write_text("# ours\n" + "\n".join(built) + "\nnot-an-address\n")

    result = _verify(devnet, "--addresses", str(addresses), "--block", str(head(rpc)))

    assert result.exit_code == 0, result.output
    assert f"Checked {len(built)} users of pool" in result.stdout
    assert "All users match getUserAccountData exactly." in result.stdout
    assert " s (" in result.stdout  # elapsed time and rate
    assert f"line {len(built) + 2}: not a 0x-prefixed" in result.stderr


def test_a_wrong_version_is_reported_as_mismatches_and_exits_1(
    devnet: Devnet, rpc: JsonRpcClient
) -> None:
    if devnet.manifest.protocol_version != "3.6.0":
        pytest.skip("3.0.2 has no getters of a version whose account math differs")
    build_users(rpc, devnet.manifest)
    jump(rpc, THIRTY_DAYS)  # interest: 3.0.2's binomial and half-up rounding now differ

    result = _verify(devnet, "--json", "--protocol-version", "3.0.2")

    assert result.exit_code == 1, result.output
    mismatches = json.loads(result.stdout)["mismatches"]
    by_user = {m["user"]: m for m in mismatches}
    emode_user = by_user[user_address(1)]  # 3.0.2 reads eMode membership from the reserves
    assert "healthFactor" in emode_user["fields"]
    assert emode_user["ours"] != emode_user["chain"]


def test_a_wrong_version_shows_the_differing_fields(devnet: Devnet, rpc: JsonRpcClient) -> None:
    if devnet.manifest.protocol_version != "3.6.0":
        pytest.skip("3.0.2 has no getters of a version whose account math differs")
    build_users(rpc, devnet.manifest)
    jump(rpc, THIRTY_DAYS)

    result = _verify(devnet, "--protocol-version", "3.0.2")

    assert result.exit_code == 1
    assert "mismatches:" in result.stdout
    assert f"  {user_address(1)}" in result.stdout
    assert "    healthFactor: ours " in result.stdout


def test_a_version_whose_getters_are_missing_exits_2(devnet: Devnet, rpc: JsonRpcClient) -> None:
    if devnet.manifest.protocol_version != "3.0.2":
        pytest.skip("only 3.0.2 lacks the newer getters")

    result = _verify(devnet, "--protocol-version", "3.6")

    assert result.exit_code == 2
    assert "getLiquidationGracePeriod(address)" in result.stderr


def test_a_thousand_users_verify_exactly(devnet: Devnet, rpc: JsonRpcClient) -> None:
    """1,000+ users with positions all match, read in progress groups of 1,000.

    Throughput is measured by bench/bench_reader.py, never asserted here.
    """
    plans = [_small(PLANS[i % len(PLANS)]) for i in range(1_400)]
    users = build_users(rpc, devnet.manifest, plans)
    jump(rpc, THIRTY_DAYS)
    block = head(rpc)

    seen: list[tuple[int, int]] = []

    report = verify_users(
        rpc, devnet.manifest.pool, users, block, progress=lambda *step: seen.append(step)
    )

    assert len(users) >= 1_000
    assert report.mismatches == ()
    assert report.version in (ProtocolVersion.V3_0_2, ProtocolVersion.V3_6)
    assert seen == [(1_000, len(users)), (len(users), len(users))]  # groups of 1,000


def _small(plan: Plan) -> Plan:
    """The plan at 1 % of its amounts, so 1,400 users fit in the liquidity."""
    supplies = {symbol: max(1, whole // 100) for symbol, whole in plan.supplies.items()}
    borrows = tuple((s, max(1, w // 100), mode) for s, w, mode in plan.borrows)
    return Plan(supplies, borrows, plan.emode, plan.only)


def test_pool_and_first_block_work_like_the_manifest(devnet: Devnet, rpc: JsonRpcClient) -> None:
    build_users(rpc, devnet.manifest)
    earlier = head(rpc)
    jump(rpc, THIRTY_DAYS)
    pool, first = devnet.manifest.pool, str(devnet.manifest.deployment_block)
    direct = ["--rpc-url", devnet.rpc_url, "--pool", pool, "--from-block", first, "--json"]

    by_pool = runner.invoke(_app(), [*direct, "--block", str(earlier)], env={})
    by_manifest = _verify(devnet, "--json", "--block", str(earlier))

    assert by_pool.exit_code == by_manifest.exit_code == 0, by_pool.output
    assert json.loads(by_pool.stdout) == json.loads(by_manifest.stdout)
    assert json.loads(by_pool.stdout)["block"] == earlier


def test_a_block_the_node_does_not_have_exits_2(devnet: Devnet) -> None:
    result = _verify(devnet, "--block", str(10**9))

    assert result.exit_code == 2
    assert "beyond the node's latest block" in result.stderr


def test_a_dump_that_cannot_be_written_exits_2(devnet: Devnet, tmp_path: Path) -> None:
    result = _verify(devnet, "--dump", str(tmp_path / "missing" / "dump.jsonl"))

    assert result.exit_code == 2
    assert "cannot write" in result.stderr


def test_the_market_can_be_given_by_its_pool_addresses_provider(devnet: Devnet) -> None:
    provider = devnet.manifest.addresses["pool_addresses_provider"]
    first = str(devnet.manifest.deployment_block)
    args = [
        "--rpc-url",
        devnet.rpc_url,
        "--pool-addresses-provider",
        provider,
        "--from-block",
        first,
    ]

    result = runner.invoke(_app(), [*args, "--json"], env={})

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["mismatches"] == []
    assert json.loads(result.stdout)["users_checked"] >= len(devnet.users)
