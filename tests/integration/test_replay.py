"""``overlord replay`` against the real contracts: the market and users as they were at a block.

Every expectation is read from the chain itself (``getUserAccountData`` at the replayed
block), never from our own math.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from overlord.chain.reader import MarketReader
from overlord.chain.rpc import JsonRpcClient
from overlord.demo_cli import CRASH, set_feed_prices
from overlord.devnet.launch import Devnet
from overlord.outputs.traces import write_trace
from overlord.replay_cli import replay_command
from overlord.verify import ACCOUNT_FIELDS, discover_users
from tests.integration.test_reader import THIRTY_DAYS, build_users, head, jump, user_address

WAD = 10**18
runner = CliRunner()


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command()(replay_command)
    return app


def _replay(devnet: Devnet, *args: str) -> Any:
    base = ["--rpc-url", devnet.rpc_url, "--manifest", str(devnet.manifest_path)]
    return runner.invoke(_app(), [*base, *args], env={"COLUMNS": "250"})


def _json(devnet: Devnet, *args: str) -> dict[str, Any]:
    result = _replay(devnet, *args, "--json")
    assert result.exit_code == 0, result.output
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def _chain(rpc: JsonRpcClient, devnet: Devnet, block: int) -> dict[str, tuple[int, ...]]:
    """``getUserAccountData`` at ``block`` of every user the Pool's events name up to it."""
    pool = devnet.manifest.pool
    users = discover_users(rpc, pool, devnet.manifest.deployment_block, block)
    values = MarketReader(rpc, pool).read_account_data(users, block)
    return dict(zip(users, values, strict=True))


def _below_one(chain: dict[str, tuple[int, ...]]) -> dict[str, int]:
    return {user: values[5] for user, values in chain.items() if values[5] < WAD}


def _crash(devnet: Devnet, rpc: JsonRpcClient) -> tuple[int, int]:
    """The head before and after a crash of the ETH, BTC and LINK feeds."""
    before = head(rpc)
    set_feed_prices(devnet, rpc, CRASH)
    return before, head(rpc)


def test_after_a_crash_it_lists_exactly_the_users_below_1_on_chain(
    devnet: Devnet, rpc: JsonRpcClient
) -> None:
    _before, after = _crash(devnet, rpc)
    chain = _chain(rpc, devnet, after)
    expected = _below_one(chain)

    document = _json(devnet, "--block", str(after), "--top", "2")

    assert expected, "the crash must sink someone"
    listed = [entry["user"] for entry in document["underwater"]]
    assert set(listed) == set(expected)
    assert listed == sorted(expected, key=lambda user: (expected[user], user))
    for entry in document["underwater"]:
        assert list(entry["account"].values()) == list(chain[entry["user"]])
        assert entry["health_factor"] == chain[entry["user"]][5]
        assert entry["health_factor_decimal"] == f"0.{entry['health_factor']:018d}"
        assert entry["matches_chain"] is True
        assert 1 <= len(entry["plans"]) <= 2
        best = entry["plans"][0]
        assert best["collateral_symbol"]
        assert best["debt_symbol"]
        assert best["net_base"] == best["gross_base"] - best["swap_cost_base"]
    assert document["block"] == after
    assert document["users_read"] == len(chain)
    assert document["underwater_count"] == len(expected)
    assert (document["mismatch_count"], document["mismatches"]) == (0, [])
    debt = sum(entry["account"]["totalDebtBase"] for entry in document["underwater"])
    assert document["totals"]["underwater_debt_base"] == debt


def test_an_earlier_block_shows_the_state_then_though_the_chain_moved_on(
    devnet: Devnet, rpc: JsonRpcClient
) -> None:
    before, after = _crash(devnet, rpc)
    jump(rpc, THIRTY_DAYS)  # and interest accrues after the crash too
    expected_then = _below_one(_chain(rpc, devnet, before))

    document = _json(devnet, "--block", str(before))

    assert head(rpc) > after > before
    assert document["block"] == before
    assert {entry["user"] for entry in document["underwater"]} == set(expected_then)
    assert document["underwater_count"] < len(_below_one(_chain(rpc, devnet, after)))
    assert document["mismatch_count"] == 0


def test_the_readable_output_has_the_table_the_exact_values_and_the_chain_check(
    devnet: Devnet, rpc: JsonRpcClient
) -> None:
    _before, after = _crash(devnet, rpc)
    lowest_user, lowest = min(_below_one(_chain(rpc, devnet, after)).items(), key=lambda i: i[1])

    result = _replay(devnet, "--block", str(after))

    assert result.exit_code == 0, result.output
    assert f"at block {after}" in result.stdout
    assert "underwater at block" in result.stdout
    assert lowest_user in result.stdout
    assert f"healthFactor 0.{lowest:018d} (wad {lowest})" in result.stdout
    assert "plan 1: " in result.stdout
    assert f"match getUserAccountData at block {after} exactly" in result.stdout
    assert "Traceback" not in result.output


def test_a_user_breakdown_equals_get_user_account_data_at_that_block(
    devnet: Devnet, rpc: JsonRpcClient
) -> None:
    _before, after = _crash(devnet, rpc)
    user = min(_below_one(_chain(rpc, devnet, after)).items(), key=lambda item: item[1])[0]
    jump(rpc, THIRTY_DAYS)  # the chain moves on; the breakdown stays at ``after``
    chain = MarketReader(rpc, devnet.manifest.pool).read_account_data([user], after)[0]

    document = _json(devnet, "--block", str(after), "--user", user, "--top", "3")
    readable = _replay(devnet, "--block", str(after), "--user", user)

    assert document["user"] == user
    assert document["account"] == dict(zip(ACCOUNT_FIELDS, chain, strict=True))
    assert document["chain"] == document["account"]
    assert (document["matches_chain"], document["differing_fields"]) == (True, [])
    assert document["underwater"] is True
    assert 1 <= len(document["plans"]) <= 3
    nets = [plan["net_base"] for plan in document["plans"]]
    assert nets == sorted(nets, reverse=True)
    assert document["reserves"]
    collateral = sum(r["collateral_base"] or 0 for r in document["reserves"])
    debt = sum(r["debt_base"] or 0 for r in document["reserves"])
    assert (collateral, debt) == (chain[0], chain[1])
    assert readable.exit_code == 0, readable.output
    assert "matches chain" in readable.stdout
    assert "scaled aToken balance" in readable.stdout
    assert "plan 1: " in readable.stdout


def test_an_emode_user_with_interest_is_broken_down_exactly(
    devnet: Devnet, rpc: JsonRpcClient
) -> None:
    build_users(rpc, devnet.manifest)
    jump(rpc, THIRTY_DAYS)
    block = head(rpc)
    user = user_address(1)  # wstETH and WETH in eMode 1, WETH borrowed
    chain = MarketReader(rpc, devnet.manifest.pool).read_account_data([user], block)[0]

    document = _json(devnet, "--block", str(block), "--user", user)

    assert document["emode"]["id"] == 1
    assert document["emode"]["liquidation_threshold"] > 0
    assert list(document["account"].values()) == list(chain)
    assert document["matches_chain"] is True
    assert document["underwater"] is False
    assert document["plans"] == []
    by_symbol = {r["symbol"]: r for r in document["reserves"]}
    assert set(by_symbol) == {"wstETH", "WETH"}
    weth = by_symbol["WETH"]
    assert weth["in_emode"] is True
    assert weth["effective_liquidation_threshold"] == document["emode"]["liquidation_threshold"]
    assert weth["normalized_debt"] > weth["variable_borrow_index"]  # thirty days of interest
    assert weth["variable_debt"] > 0
    assert (weth["stable_debt"] is None) == (devnet.manifest.protocol_version == "3.6.0")
    debt = sum(r["debt_base"] or 0 for r in document["reserves"])
    assert debt == chain[1]


def test_a_stable_borrower_is_broken_down_on_3_0(devnet: Devnet, rpc: JsonRpcClient) -> None:
    if devnet.manifest.protocol_version != "3.0.2":
        pytest.skip("stable debt is gone from 3.2 on")
    build_users(rpc, devnet.manifest)
    jump(rpc, THIRTY_DAYS)
    block = head(rpc)
    user = user_address(6)  # WBTC supplied, DAI stable and USDC variable debt

    document = _json(devnet, "--block", str(block), "--user", user)

    by_symbol = {r["symbol"]: r for r in document["reserves"]}
    assert by_symbol["DAI"]["stable_debt"] > 5_000 * 10**18  # with interest
    assert document["matches_chain"] is True


def test_a_trace_file_line_that_was_tampered_with_is_flagged(
    devnet: Devnet, rpc: JsonRpcClient, tmp_path: Path
) -> None:
    _before, after = _crash(devnet, rpc)
    chain = _chain(rpc, devnet, after)
    users = list(chain)[:12]
    path = write_trace(tmp_path, "replay-test", [(user, chain[user][5]) for user in users])
    lines = path.read_text().splitlines()
    tampered_user, hf, readable = lines[3].split()
    lines[3] = f"{tampered_user} {int(hf) + 1} {readable}"
    path.write_text("\n".join(lines) + "\n")

    document = _json(devnet, "--block", str(after), "--trace", str(path))
    result = _replay(devnet, "--block", str(after), "--trace", str(path))

    assert document["users_read"] == len(users)
    trace = document["trace"]
    assert trace["differences"] == 1
    assert [e["user"] for e in trace["entries"]] == users
    flagged = [e for e in trace["entries"] if e["differs"]]
    assert [e["user"] for e in flagged] == [tampered_user]
    assert flagged[0]["trace_health_factor"] == int(hf) + 1
    assert flagged[0]["replay_health_factor"] == int(hf)
    assert result.exit_code == 0, result.output
    assert "DIFFERS" in result.stdout
    assert f"1 of {len(users)} trace lines differ from the replay." in result.stdout


def test_a_block_above_the_head_exits_2_with_one_line(devnet: Devnet, rpc: JsonRpcClient) -> None:
    latest = head(rpc)

    result = _replay(devnet, "--block", str(latest + 1_000))

    assert result.exit_code == 2
    assert f"block {latest + 1_000} is beyond the node's latest block {latest}" in result.stderr
    assert "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_user_of_an_addresses_file_can_be_replayed_at_an_earlier_block(
    devnet: Devnet, rpc: JsonRpcClient, tmp_path: Path
) -> None:
    before, after = _crash(devnet, rpc)
    sunk = sorted(
        set(_below_one(_chain(rpc, devnet, after))) - set(_below_one(_chain(rpc, devnet, before)))
    )
    addresses = tmp_path / "users.txt"
    addresses.write_text("\n".join(sunk[:3]) + "\n")

    then = _json(devnet, "--block", str(before), "--addresses", str(addresses))
    now = _json(devnet, "--block", str(after), "--addresses", str(addresses))

    assert sunk
    assert (then["users_read"], then["underwater"]) == (len(sunk[:3]), [])
    assert {entry["user"] for entry in now["underwater"]} == set(sunk[:3])
