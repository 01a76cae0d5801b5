"""The pure parts of ``overlord replay`` and its input errors (no chain).

Markets are built in memory (tests/unit/aave/builders.py): collateral ``C`` (18 decimals,
2000e8, LTV 80 %, LT 85 %, bonus 5 %) and debt ``D`` (6 decimals, 1e8), indices one ray.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from overlord.aave import (
    NO_DEBT_HEALTH_FACTOR,
    EModeCategory,
    Market,
    ProtocolVersion,
    UserAccount,
    calculate_user_account_data,
)
from overlord.chain.reader import MarketState
from overlord.engine.plans import CostModel, ranked_plans
from overlord.replay import (
    MarketReplay,
    ReplayedUser,
    TraceEntry,
    breakdown_document,
    compare_trace,
    fixed_point,
    looks_pruned,
    market_document,
    parse_trace,
    replay_account,
    underwater_first,
    unit_decimals,
    user_breakdown,
    wad_decimal,
)
from overlord.replay_cli import replay_command
from overlord.verify import ACCOUNT_FIELDS
from tests.unit.aave.builders import NOW, asset, make_market, make_reserve, make_user
from tests.unit.chain import fakes

V36, V302 = ProtocolVersion.V3_6, ProtocolVersion.V3_0_2
C, D = 10**18, 10**6
POOL = "0x" + "11" * 20
ORACLE = "0x" + "33" * 20
OTHER = "0x00000000000000000000000000000000000000b1"
runner = CliRunner()


def _market(version: ProtocolVersion = V36, *, emode: tuple[EModeCategory, ...] = ()) -> Market:
    reserves = [
        replace(make_reserve(0, ltv=8000, lt=8500, lb=10500, emode_category=1), symbol="C"),
        replace(make_reserve(1, decimals=6, emode_category=1), symbol="D"),
    ]
    return make_market(version, reserves, {0: 2000 * 10**8, 1: 10**8}, emode=emode)


def _state(market: Market) -> MarketState:
    return MarketState(
        market=market,
        block_number=100,
        block_timestamp=NOW,
        tokens={},
        pool=POOL,
        oracle=ORACLE,
    )


def _underwater(address: str = "0x00000000000000000000000000000000000000b0") -> UserAccount:
    """1 C against 1,800 D: health factor 1700/1800."""
    return replace(make_user(collateral={0: C}, debt={1: 1_800 * D}), address=address)


def _healthy() -> UserAccount:
    return replace(make_user(collateral={0: C}, debt={1: 1_000 * D}), address=OTHER)


def _six(market: Market, user: UserAccount) -> tuple[int, int, int, int, int, int]:
    return calculate_user_account_data(market, user, NOW).as_tuple()


# Exact numbers as text.


@pytest.mark.parametrize(
    ("amount", "decimals", "text"),
    [
        (15, 1, "1.5"),
        (5, 3, "0.005"),
        (0, 2, "0.00"),
        (-1234, 2, "-12.34"),
        (42, 0, "42"),
        (10**18, 18, "1.000000000000000000"),
    ],
)
def test_fixed_point_keeps_every_digit(amount: int, decimals: int, text: str) -> None:
    assert fixed_point(amount, decimals) == text


def test_fixed_point_refuses_negative_decimals() -> None:
    with pytest.raises(ValueError, match="must not be negative"):
        fixed_point(1, -1)


def test_a_wad_reads_with_18_digits() -> None:
    assert wad_decimal(999_999_999_999_999_999) == "0.999999999999999999"
    assert wad_decimal(1) == "0.000000000000000001"
    assert wad_decimal(2 * 10**18 + 5) == "2.000000000000000005"


@pytest.mark.parametrize(("unit", "decimals"), [(1, 0), (10**8, 8), (10**18, 18)])
def test_unit_decimals_of_powers_of_ten(unit: int, decimals: int) -> None:
    assert unit_decimals(unit) == decimals


@pytest.mark.parametrize("unit", [0, -10, 12, 1001])
def test_unit_decimals_refuses_what_is_no_power_of_ten(unit: int) -> None:
    with pytest.raises(ValueError, match="not a positive power of ten"):
        unit_decimals(unit)


@pytest.mark.parametrize(
    "message",
    [
        "eth_call: missing trie node 1a2b (path ) (code -32000)",
        "header not found",
        "historical state 0xabc is not available",
        "state is not available",
        "eth_call: required historical state unavailable (pruned)",
    ],
)
def test_pruned_state_messages_are_recognised(message: str) -> None:
    assert looks_pruned(message)


def test_other_errors_are_not_taken_for_pruned_state() -> None:
    assert not looks_pruned("eth_call getReserveData(address): execution reverted")


# One user.


def test_an_underwater_user_gets_the_top_plans_best_first() -> None:
    market, user = _market(), _underwater()
    costs = CostModel(fee_bps=30)
    every = ranked_plans(market, user, NOW, None, costs=costs)

    replayed = replay_account(market, user, NOW, _six(market, user), costs=costs, top=1)

    assert replayed.underwater
    assert replayed.health_factor == 1700 * 10**18 // 1800
    assert replayed.plans == (every[0],)
    assert replayed.matches_chain is True
    assert replayed.error is None


def test_a_healthy_user_has_no_plan() -> None:
    market, user = _market(), _healthy()

    replayed = replay_account(market, user, NOW, None, costs=CostModel(), top=3)

    assert not replayed.underwater
    assert replayed.plans == ()
    assert replayed.matches_chain is None  # the chain was not read


def test_a_user_without_debt_is_not_underwater() -> None:
    market = _market()
    user = make_user(collateral={0: C})

    replayed = replay_account(market, user, NOW, None, costs=CostModel(), top=1)

    assert replayed.health_factor == NO_DEBT_HEALTH_FACTOR
    assert not replayed.underwater


def test_a_differing_chain_value_is_named() -> None:
    market, user = _market(), _underwater()
    values = _six(market, user)
    chain = (*values[:5], values[5] + 1)

    replayed = replay_account(market, user, NOW, chain, costs=CostModel(), top=1)

    assert replayed.matches_chain is False
    assert replayed.check is not None
    assert replayed.check.differing_fields == ("healthFactor",)


def test_a_missing_price_is_an_error_and_a_mismatch_not_a_crash() -> None:
    market = replace(_market(), prices={asset(0): 2000 * 10**8})
    user = _underwater()

    replayed = replay_account(market, user, NOW, (1, 2, 3, 4, 5, 6), costs=CostModel(), top=1)

    assert replayed.account is None
    assert replayed.error is not None
    assert "MissingPriceError" in replayed.error
    assert replayed.matches_chain is False
    assert replayed.check is not None
    assert replayed.check.differing_fields == ACCOUNT_FIELDS


def _replayed(address: str, health_factor: int) -> ReplayedUser:
    market = _market()
    data = calculate_user_account_data(market, _underwater(address), NOW)
    return ReplayedUser(address, replace(data, health_factor=health_factor), None)


def test_underwater_first_sorts_by_health_factor_then_address() -> None:
    users = [
        _replayed("0x" + "03" * 20, 9 * 10**17),
        _replayed("0x" + "02" * 20, 10**18),  # exactly 1: not underwater
        _replayed("0x" + "05" * 20, 5 * 10**17),
        _replayed("0x" + "01" * 20, 9 * 10**17),
    ]

    ordered = underwater_first(users)

    assert [user.address for user in ordered] == [
        "0x" + "05" * 20,
        "0x" + "01" * 20,
        "0x" + "03" * 20,
    ]


def test_the_market_document_counts_and_sums_the_underwater_users() -> None:
    market = _market()
    costs = CostModel()
    users = tuple(
        replay_account(market, account, NOW, _six(market, account), costs=costs, top=1)
        for account in (_healthy(), _underwater())
    )
    report = MarketReplay(_state(market), 10**8, costs, users)

    document = market_document(report)

    assert (document["users_read"], document["underwater_count"]) == (2, 1)
    assert document["block"] == 100
    assert document["protocol_version"] == "3.6"
    entry = document["underwater"][0]
    assert entry["user"] == _underwater().address
    assert list(entry["account"]) == list(ACCOUNT_FIELDS)
    assert entry["health_factor_decimal"] == wad_decimal(1700 * 10**18 // 1800)
    plan = entry["plans"][0]
    assert (plan["collateral_symbol"], plan["debt_symbol"]) == ("C", "D")
    assert document["totals"]["underwater_debt_base"] == 1_800 * 10**8
    assert document["totals"]["best_net_base"] == plan["net_base"]
    assert (document["mismatch_count"], document["trace"]) == (0, None)


# One user in full.


def test_the_breakdown_shows_each_reserve_and_adds_up_to_the_account() -> None:
    market, user = _market(), _underwater()

    breakdown = user_breakdown(
        _state(market), user, _six(market, user), base_currency_unit=10**8, top=2
    )

    lines = {line.symbol: line for line in breakdown.reserves}
    assert set(lines) == {"C", "D"}
    assert (lines["C"].collateral, lines["C"].borrowing) == (True, False)
    assert lines["C"].atoken_balance == C
    assert lines["D"].variable_debt == 1_800 * D
    assert lines["D"].stable_debt is None  # no stable debt in 3.6
    account = breakdown.user.account
    assert account is not None
    assert sum(line.collateral_base or 0 for line in breakdown.reserves) == (
        account.total_collateral_base
    )
    assert sum(line.debt_base or 0 for line in breakdown.reserves) == account.total_debt_base
    assert breakdown.user.matches_chain is True
    assert breakdown.emode is None
    assert 1 <= len(breakdown.user.plans) <= 2


def test_the_breakdown_shows_interest_accrued_since_the_stored_index() -> None:
    market = _market()
    debt = replace(market.reserves[1], current_variable_borrow_rate=10**26, last_update_timestamp=0)
    market = replace(market, reserves={**market.reserves, 1: debt})
    user = _healthy()

    breakdown = user_breakdown(_state(market), user, None, base_currency_unit=10**8)

    line = next(line for line in breakdown.reserves if line.symbol == "D")
    assert line.variable_borrow_index == 10**27
    assert line.normalized_debt > line.variable_borrow_index
    assert line.variable_debt > 1_000 * D
    assert breakdown.user.matches_chain is None


def test_the_breakdown_shows_the_emode_category_and_its_price_source_on_3_0() -> None:
    source = "0x" + "5e" * 20
    category = EModeCategory(1, 9000, 9300, 10200, "C-D", price_source=source)
    market = replace(
        _market(V302, emode=(category,)),
        prices={asset(0): 2000 * 10**8, asset(1): 10**8, source: 10**8},
    )
    user = replace(_healthy(), emode_category=1)

    document = breakdown_document(
        user_breakdown(_state(market), user, None, base_currency_unit=10**8)
    )

    assert document["emode"] == {
        "id": 1,
        "label": "C-D",
        "ltv": 9000,
        "liquidation_threshold": 9300,
        "liquidation_bonus": 10200,
        "price_source": source,
        "price_source_price": 10**8,
    }
    by_symbol = {r["symbol"]: r for r in document["reserves"]}
    assert by_symbol["C"]["in_emode"] is True
    assert by_symbol["C"]["effective_liquidation_threshold"] == 9300
    assert by_symbol["C"]["effective_liquidation_bonus"] == 10200
    assert by_symbol["C"]["price"] == 2000 * 10**8
    assert by_symbol["C"]["account_price"] == 10**8  # the category's price source
    assert by_symbol["D"]["stable_debt"] == 0  # 3.0 has stable debt, this user none


def test_an_underwater_breakdown_names_the_pairs_the_pool_refuses() -> None:
    market = _market()
    paused = replace(
        market.reserves[0],
        configuration=replace(market.reserves[0].configuration, paused=True),
    )
    market = replace(market, reserves={**market.reserves, 0: paused})
    user = _underwater()

    document = breakdown_document(
        user_breakdown(_state(market), user, None, base_currency_unit=10**8)
    )

    assert document["underwater"] is True
    assert document["plans"] == []
    assert [
        (r["collateral_symbol"], r["debt_symbol"], r["reason"]) for r in document["rejected_pairs"]
    ] == [("C", "D", "ReservePaused")]


def test_top_below_1_is_refused() -> None:
    market = _market()
    with pytest.raises(ValueError, match="top must be at least 1"):
        user_breakdown(_state(market), _healthy(), None, base_currency_unit=10**8, top=0)


# hf-traces files.


def test_a_trace_parses_its_lines_and_reports_the_bad_ones() -> None:
    upper = "0x" + "AB" * 20
    lines = [
        f"{'0x' + '01' * 20} 950000000000000000 0.95",
        "",
        f"{upper} {NO_DEBT_HEALTH_FACTOR} 1.157920892373162e+59",
        f"{'0x' + '02' * 20} 10",
        "not-an-address 1 1.0",
        f"{'0x' + '03' * 20} -5 -5e-18",
        f"{'0x' + '04' * 20} {NO_DEBT_HEALTH_FACTOR + 1} 1e59",
        f"{'0x' + '05' * 20}",
        f"{'0x' + '01' * 20} 1 1e-18",
    ]

    entries, problems = parse_trace(lines)

    assert entries == [
        TraceEntry("0x" + "01" * 20, 95 * 10**16, 1),
        TraceEntry(upper.lower(), NO_DEBT_HEALTH_FACTOR, 3),
        TraceEntry("0x" + "02" * 20, 10, 4),
    ]
    assert [(p.line, p.reason) for p in problems] == [
        (5, "not a 0x-prefixed 20-byte hex address"),
        (6, "the health factor is not a uint256 decimal"),
        (7, "the health factor is not a uint256 decimal"),
        (8, "not '<address> <hf_wad> <hf_float>'"),
        (9, "repeats a user"),
    ]
    assert (
        str(problems[0]) == "line 5: not a 0x-prefixed 20-byte hex address: 'not-an-address 1 1.0'"
    )


def test_compare_trace_flags_the_differing_health_factors() -> None:
    same, changed, broken = "0x" + "01" * 20, "0x" + "02" * 20, "0x" + "03" * 20
    replayed = [
        _replayed(same, 9 * 10**17),
        _replayed(changed, 8 * 10**17),
        ReplayedUser(broken, None, None, (), "MissingPriceError"),
    ]
    entries = [
        TraceEntry(changed, 8 * 10**17 + 1, 1),
        TraceEntry(same, 9 * 10**17, 2),
        TraceEntry(broken, 1, 3),
    ]

    comparisons = compare_trace(entries, replayed)

    assert [(c.user, c.differs) for c in comparisons] == [
        (changed, True),
        (same, False),
        (broken, True),
    ]
    assert comparisons[2].replay_health_factor is None


# The command's input errors: one line on stderr, exit 2, no traceback.


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command()(replay_command)
    return app


def _invoke(*args: str) -> Any:
    return runner.invoke(_app(), list(args), env={})


def _assert_one_line_error(result: Any, text: str) -> None:
    assert result.exit_code == 2, result.output
    assert text in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output


NODE = ("--rpc-url", "http://127.0.0.1:1", "--pool", POOL, "--block", "5")


def test_a_bad_user_address_exits_2() -> None:
    result = _invoke(*NODE, "--user", "0x1234")

    _assert_one_line_error(result, "--user '0x1234' is not a 0x-prefixed 20-byte hex address")


def test_an_unreachable_node_exits_2() -> None:
    result = _invoke(*NODE, "--user", OTHER)

    _assert_one_line_error(result, "cannot reach the node")


def test_an_addresses_file_without_users_exits_2(tmp_path: Path) -> None:
    addresses = tmp_path / "users.txt"
    addresses.write_text("# nobody\n\n")

    result = _invoke(*NODE, "--addresses", str(addresses))

    _assert_one_line_error(result, "no users: the addresses file")


def test_a_trace_without_users_exits_2(tmp_path: Path) -> None:
    trace = tmp_path / "trace.txt"
    trace.write_text("garbage\n")

    result = _invoke(*NODE, "--trace", str(trace))

    assert result.exit_code == 2
    assert "warning:" in result.stderr
    assert "no users: the trace file" in result.stderr


def test_user_and_trace_together_exit_2(tmp_path: Path) -> None:
    result = _invoke(*NODE, "--user", OTHER, "--trace", str(tmp_path / "t.txt"))

    _assert_one_line_error(result, "pass at most one of --user, --addresses and --trace")


def test_a_bad_gas_cost_exits_2() -> None:
    result = _invoke(*NODE, "--user", OTHER, "--gas-cost-usd", "lots")

    _assert_one_line_error(result, "--gas-cost-usd 'lots' is not a number")


def test_discovery_without_a_first_block_exits_2() -> None:
    result = _invoke(*NODE)

    _assert_one_line_error(result, "--from-block is needed to discover users")


def test_a_block_is_required() -> None:
    result = _invoke("--rpc-url", "http://127.0.0.1:1", "--pool", POOL)

    assert result.exit_code == 2
    assert "--block" in result.output


class _PrunedNode(fakes.FakeNode):
    """A node at block 1000 that no longer has the state of older blocks."""

    def answer(self, method: str, params: list[Any]) -> fakes.Answer:
        if method == "eth_blockNumber":
            return fakes.raw(hex(1000))
        if method in ("eth_call", "eth_getBlockByNumber"):
            return {"error": {"code": -32000, "message": "missing trie node 5a1b (path )"}}
        return super().answer(method, params)


def test_a_pruned_block_exits_2_and_says_an_archive_node_is_needed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    node = _PrunedNode()
    monkeypatch.setattr("overlord.replay_cli.JsonRpcClient", lambda _url: fakes.client_for(node))

    result = _invoke(*NODE, "--user", OTHER)

    _assert_one_line_error(result, "does not have the state of block 5")
    assert "archive node" in result.stderr
    assert any(
        item.get("method") == "eth_getBlockByNumber"
        for request in node.requests
        for item in (request if isinstance(request, list) else [request])
    )
