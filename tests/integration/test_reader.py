"""The market reader against the real Aave contracts (3.0.2 and 3.6.0) on anvil.

The users here are built by the tests themselves (supply, borrow, eMode, on 3.0.2 a stable
borrow), on top of whatever users the session chain was seeded with. The helpers that build
them are shared with ``test_verify.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

from overlord.aave import ProtocolVersion, calculate_user_account_data
from overlord.chain import aave_abi as abi
from overlord.chain.reader import MarketReader, MarketState
from overlord.chain.rpc import JsonRpcClient, RpcError
from overlord.devnet.launch import Devnet
from overlord.devnet.manifest import Manifest
from overlord.devnet.transactions import Tx, TxSender
from tests.integration.governance import change_emode, govern

MAX_UINT = 2**256 - 1
VARIABLE, STABLE = 2, 1
THIRTY_DAYS = 30 * 24 * 3600

# Building users.


@dataclass(frozen=True)
class Plan:
    """One user's positions: whole-token supplies, borrows (symbol, amount, mode), eMode."""

    supplies: dict[str, int]
    borrows: tuple[tuple[str, int, int], ...] = ()
    emode: int = 0
    only: str | None = None  # build only on this protocol


def user_address(index: int) -> str:
    """A fresh address for a test user (anvil impersonates it; gas is free on the devnet)."""
    return f"0x{0xB0B0_0000 + index:040x}"


PLANS: tuple[Plan, ...] = (
    Plan({"WETH": 10}, (("USDC", 15_000, VARIABLE),)),
    Plan({"wstETH": 10, "WETH": 2}, (("WETH", 8, VARIABLE),), emode=1),
    Plan({"USDC": 10_000, "DAI": 5_000}, (("USDC", 12_000, VARIABLE),), emode=2),
    Plan({"WBTC": 1, "LINK": 1_000}, (("WETH", 5, VARIABLE), ("USDC", 10_000, VARIABLE))),
    Plan({"DAI": 1_000}),
    Plan({"WETH": 1}, (("LINK", 100, VARIABLE),)),
    Plan({"WBTC": 2}, (("DAI", 5_000, STABLE), ("USDC", 1_000, VARIABLE)), only="3.0.2"),
    Plan({"LINK": 2_000}, (("USDC", 3_000, STABLE),), only="3.0.2"),
)
LIQUIDITY = {
    "WETH": 1_000,
    "wstETH": 100,
    "USDC": 10_000_000,
    "DAI": 10_000_000,
    "WBTC": 100,
    "LINK": 1_000_000,
}


@dataclass
class Built:
    """Users created by :func:`build_users`, and the transactions of each phase."""

    users: list[str] = field(default_factory=list)
    mints: list[Tx] = field(default_factory=list)
    supplies: list[Tx] = field(default_factory=list)
    borrows: list[Tx] = field(default_factory=list)


def _amount(manifest: Manifest, symbol: str, whole: int) -> int:
    return whole * int(10 ** manifest.reserve(symbol).decimals)


def mint_tx(manifest: Manifest, symbol: str, to: str, whole: int) -> Tx:
    """Mint from the admin: 3.6 TestnetERC20 is onlyOwner, 3.0.2 MintableERC20 is public."""
    token = manifest.reserve(symbol).asset
    data = abi.MINT.encode(to, _amount(manifest, symbol, whole))
    return Tx(manifest.accounts["admin"], token, data, f"mint {symbol} to {to}")


def supply_txs(manifest: Manifest, user: str, symbol: str, whole: int) -> list[Tx]:
    """Approve the Pool and supply on the user's own behalf."""
    asset, amount = manifest.reserve(symbol).asset, _amount(manifest, symbol, whole)
    return [
        Tx(user, asset, abi.APPROVE.encode(manifest.pool, MAX_UINT), f"approve {symbol}"),
        Tx(user, manifest.pool, abi.SUPPLY.encode(asset, amount, user, 0), f"supply {symbol}"),
    ]


def borrow_tx(manifest: Manifest, user: str, symbol: str, whole: int, mode: int) -> Tx:
    """Borrow on the user's own behalf (mode 2 variable, 1 stable on 3.0.2)."""
    asset, amount = manifest.reserve(symbol).asset, _amount(manifest, symbol, whole)
    data = abi.BORROW.encode(asset, amount, mode, 0, user)
    return Tx(user, manifest.pool, data, f"borrow {symbol} by {user}")


def _plan_txs(built: Built, manifest: Manifest, user: str, plan: Plan) -> None:
    for symbol, whole in plan.supplies.items():
        built.mints.append(mint_tx(manifest, symbol, user, whole))
        built.supplies += supply_txs(manifest, user, symbol, whole)
    if plan.emode:
        data = abi.SET_USER_EMODE.encode(plan.emode)
        built.supplies.append(Tx(user, manifest.pool, data, f"eMode {plan.emode}"))
    built.borrows += [borrow_tx(manifest, user, s, w, m) for s, w, m in plan.borrows]


def build_users(
    client: JsonRpcClient, manifest: Manifest, plans: Sequence[Plan] = PLANS
) -> list[str]:
    """Create the liquidity provider's supplies and one user per plan; return the users.

    Mints, then supplies (and eMode), then borrows, each in its own ``send`` because
    transactions of different senders may be mined in any order.
    """
    built = Built()
    provider = manifest.accounts["liquidity_provider"]
    for symbol, whole in LIQUIDITY.items():
        built.mints.append(mint_tx(manifest, symbol, provider, whole))
        built.supplies += supply_txs(manifest, provider, symbol, whole)
    for index, plan in enumerate(plans):
        if plan.only not in (None, manifest.protocol_version):
            continue
        user = user_address(index)
        built.users.append(user)
        _plan_txs(built, manifest, user, plan)
    sender = TxSender(client)
    for phase in (built.mints, built.supplies, built.borrows):
        sender.send(phase)
    return built.users


def set_feed(client: JsonRpcClient, manifest: Manifest, feed: str, answer: int) -> None:
    """Move a settable feed (owner: the admin)."""
    data = abi.UPDATE_ANSWER.encode(answer)
    tx = Tx(manifest.accounts["admin"], manifest.feed(feed).address, data, f"feed {feed}")
    TxSender(client).send([tx])


def jump(client: JsonRpcClient, seconds: int) -> None:
    """Advance the chain's clock and mine a block at the new time."""
    client.call("evm_increaseTime", [seconds])
    client.call("evm_mine")


def head(client: JsonRpcClient) -> int:
    """The latest block number."""
    return int(client.call("eth_blockNumber"), 16)


def all_users(devnet: Devnet, built: Sequence[str]) -> list[str]:
    """The seeded users, ours, and the accounts that hold positions."""
    extra = [devnet.manifest.accounts[name] for name in ("liquidity_provider", "liquidator")]
    return list(dict.fromkeys(a.lower() for a in (*devnet.users, *built, *extra)))


def assert_exact(client: JsonRpcClient, pool: str, users: Sequence[str], block: int) -> MarketState:
    """Ours equals getUserAccountData at ``block`` for every user; return the market read."""
    reader = MarketReader(client, pool)
    state = reader.read_market(block)
    accounts = reader.read_users(users, block, state)
    chain = reader.read_account_data(users, block)
    ours = [calculate_user_account_data(state.market, a, state.block_timestamp) for a in accounts]
    differing = {
        account.address: (mine.as_tuple(), theirs)
        for account, mine, theirs in zip(accounts, ours, chain, strict=True)
        if mine.as_tuple() != theirs
    }
    assert differing == {}
    return state


# The market.


def test_reader_detects_the_version_and_reads_the_manifests_reserves(
    devnet: Devnet, rpc: JsonRpcClient
) -> None:
    manifest = devnet.manifest

    state = MarketReader(rpc, manifest.pool).read_market(head(rpc))

    expected = {"3.0.2": ProtocolVersion.V3_0_2, "3.6.0": ProtocolVersion.V3_6}
    assert state.version is expected[manifest.protocol_version]
    assert state.pool_revision == (1 if manifest.protocol_version == "3.0.2" else 10)
    assert len(state.market.reserves) == len(manifest.reserves)
    for info in manifest.reserves:
        reserve = state.market.reserve_by_asset(info.asset.lower())
        configuration = reserve.configuration
        tokens = state.tokens[reserve.id]
        assert reserve.symbol == tokens.symbol == info.symbol
        assert (
            configuration.decimals,
            configuration.ltv,
            configuration.liquidation_threshold,
            configuration.liquidation_bonus,
            configuration.liquidation_protocol_fee,
        ) == (
            info.decimals,
            info.ltv,
            info.liquidation_threshold,
            info.liquidation_bonus,
            info.protocol_fee,
        )
        assert tokens.decimals == info.decimals
        assert tokens.a_token == info.a_token.lower()
        assert tokens.variable_debt_token == info.variable_debt_token.lower()
        stable = info.stable_debt_token.lower() if info.stable_debt_token else None
        assert tokens.stable_debt_token == stable
        assert state.market.prices[reserve.asset] > 0


def test_reader_reads_the_emode_categories_with_members_and_price_source(
    devnet: Devnet, rpc: JsonRpcClient
) -> None:
    manifest = devnet.manifest

    market = MarketReader(rpc, manifest.pool).read_market(head(rpc)).market

    assert sorted(market.emode_categories) == sorted(e.id for e in manifest.emode_categories)
    for info in manifest.emode_categories:
        category = market.emode_categories[info.id]
        assert (category.ltv, category.liquidation_threshold, category.liquidation_bonus) == (
            info.ltv,
            info.liquidation_threshold,
            info.liquidation_bonus,
        )
        assert category.label == info.label
        members = {market.reserve_by_asset(a.lower()).id for a in info.assets}
        if manifest.protocol_version == "3.0.2":
            in_category = {
                r.id for r in market.reserves.values() if r.configuration.emode_category == info.id
            }
            assert in_category == members
            assert category.price_source == (
                info.price_source.lower() if info.price_source else None
            )
        else:
            assert category.collateral_bitmap == sum(1 << i for i in members)
            assert category.price_source is None
    if manifest.protocol_version == "3.0.2":
        sources = [c.price_source for c in market.emode_categories.values() if c.price_source]
        assert sources  # the devnet's stablecoin category has one
        assert all(market.prices[s] > 0 for s in sources)


def test_a_forced_version_is_used_as_given(devnet: Devnet, rpc: JsonRpcClient) -> None:
    forced = {"3.0.2": ProtocolVersion.V3_0_0, "3.6.0": ProtocolVersion.V3_5}
    version = forced[devnet.manifest.protocol_version]

    state = MarketReader(rpc, devnet.manifest.pool, version=version).read_market(head(rpc))

    assert state.version is version


def test_a_forced_version_whose_getters_are_missing_names_the_call(
    devnet: Devnet, rpc: JsonRpcClient
) -> None:
    if devnet.manifest.protocol_version != "3.0.2":
        pytest.skip("3.0.2 lacks the 3.1+ getters")
    reader = MarketReader(rpc, devnet.manifest.pool, version=ProtocolVersion.V3_6)

    with pytest.raises(RpcError, match=r"getLiquidationGracePeriod\(address\) on 0x"):
        reader.read_market(head(rpc))


# Users.


def test_reader_reads_our_users_positions(devnet: Devnet, rpc: JsonRpcClient) -> None:
    users = build_users(rpc, devnet.manifest)
    block = head(rpc)
    reader = MarketReader(rpc, devnet.manifest.pool)
    state = reader.read_market(block)

    accounts = reader.read_users(users, block, state)

    assert [a.address for a in accounts] == users
    by_symbol = {r.symbol: r.id for r in state.market.reserves.values()}
    first, eth_emode, stable_emode = accounts[0], accounts[1], accounts[2]
    assert first.position(by_symbol["WETH"]).scaled_atoken_balance > 0
    assert first.position(by_symbol["USDC"]).scaled_variable_debt > 0
    assert (eth_emode.emode_category, stable_emode.emode_category) == (1, 2)
    if devnet.manifest.protocol_version == "3.0.2":
        stable = accounts[6].position(by_symbol["DAI"]).stable_debt
        assert stable is not None
        assert stable.principal == 5_000 * 10**18
        assert stable.rate > 0
        assert stable.last_update_timestamp == state.block_timestamp


def test_ours_equals_get_user_account_data_for_every_user(
    devnet: Devnet, rpc: JsonRpcClient
) -> None:
    built = build_users(rpc, devnet.manifest)

    assert_exact(rpc, devnet.manifest.pool, all_users(devnet, built), head(rpc))


def test_exact_after_price_moves_time_and_actions_now_and_at_earlier_blocks(
    devnet: Devnet, rpc: JsonRpcClient
) -> None:
    manifest = devnet.manifest
    users = all_users(devnet, build_users(rpc, manifest))
    built_at = head(rpc)
    set_feed(rpc, manifest, "ETH / USD", 1_500 * 10**8)
    set_feed(rpc, manifest, "USDC / USD", 98_000_000)  # the 3.0.2 stablecoin eMode source
    priced_at = head(rpc)
    assert_exact(rpc, manifest.pool, users, priced_at)
    jump(rpc, THIRTY_DAYS)
    jumped_at = head(rpc)
    assert_exact(rpc, manifest.pool, users, jumped_at)
    _act(rpc, manifest)
    acted_at = head(rpc)

    assert_exact(rpc, manifest.pool, users, acted_at)
    for earlier in (built_at, priced_at, jumped_at):
        assert_exact(rpc, manifest.pool, users, earlier)


def _act(client: JsonRpcClient, manifest: Manifest) -> None:
    """Liquidate the first user, repay and withdraw for another, supply and borrow more."""
    victim, repayer, grower = user_address(0), user_address(3), user_address(5)
    liquidator = manifest.accounts["liquidator"]
    usdc, weth, link = (manifest.reserve(s).asset for s in ("USDC", "WETH", "LINK"))
    pool = manifest.pool
    sender = TxSender(client)
    sender.send(
        [mint_tx(manifest, "USDC", liquidator, 100_000), mint_tx(manifest, "WETH", grower, 5)]
    )
    liquidation = abi.LIQUIDATION_CALL.encode(weth, usdc, victim, 2_000 * 10**6, False)
    sender.send(
        [
            Tx(liquidator, usdc, abi.APPROVE.encode(pool, MAX_UINT), "approve USDC"),
            Tx(liquidator, pool, liquidation, "liquidate the first user"),
            Tx(repayer, weth, abi.APPROVE.encode(pool, MAX_UINT), "approve WETH"),
            Tx(repayer, pool, abi.REPAY.encode(weth, 10**18, VARIABLE, repayer), "repay WETH"),
            Tx(repayer, pool, abi.WITHDRAW.encode(link, 100 * 10**18, repayer), "withdraw"),
            *supply_txs(manifest, grower, "WETH", 5),
            borrow_tx(manifest, grower, "LINK", 50, VARIABLE),
        ]
    )


# Governance changes (tests/integration/governance.py).


def test_exact_after_governance_changes(devnet: Devnet, rpc: JsonRpcClient) -> None:
    users = all_users(devnet, build_users(rpc, devnet.manifest))
    govern(rpc, devnet.manifest)
    jump(rpc, THIRTY_DAYS)

    state = assert_exact(rpc, devnet.manifest.pool, users, head(rpc))

    market = state.market
    link = market.reserve_by_asset(devnet.manifest.reserve("LINK").asset.lower())
    assert link.configuration.frozen
    weth = market.reserve_by_asset(devnet.manifest.reserve("WETH").asset.lower())
    category = market.emode_categories[1]
    if devnet.manifest.protocol_version == "3.6.0":
        assert category.ltvzero_bitmap >> weth.id & 1
    else:
        assert category.price_source == weth.asset


def test_exact_after_a_crash_with_bad_debt_and_a_year_of_interest(
    devnet: Devnet, rpc: JsonRpcClient
) -> None:
    manifest = devnet.manifest
    users = all_users(devnet, build_users(rpc, manifest))
    set_feed(rpc, manifest, "ETH / USD", 500 * 10**8)  # the first user's WETH no longer covers
    liquidator = manifest.accounts["liquidator"]
    usdc, weth = manifest.reserve("USDC").asset, manifest.reserve("WETH").asset
    TxSender(rpc).send([mint_tx(manifest, "USDC", liquidator, 100_000)])
    everything = abi.LIQUIDATION_CALL.encode(weth, usdc, user_address(0), MAX_UINT, False)
    TxSender(rpc).send(
        [
            Tx(liquidator, usdc, abi.APPROVE.encode(manifest.pool, MAX_UINT), "approve USDC"),
            Tx(liquidator, manifest.pool, everything, "liquidate all of the first user"),
        ]
    )
    liquidated_at = head(rpc)
    jump(rpc, 365 * 24 * 3600)

    state = assert_exact(rpc, manifest.pool, users, head(rpc))
    assert_exact(rpc, manifest.pool, users, liquidated_at)

    (victim,) = MarketReader(rpc, manifest.pool).read_users([user_address(0)], head(rpc), state)
    weth_id = state.market.reserve_by_asset(weth.lower()).id
    assert victim.position(weth_id).scaled_atoken_balance == 0  # all collateral seized


# Incremental reads (the engine's per-block read).


def _incremental_equals_full(
    reader: MarketReader, previous: MarketState, block: int
) -> MarketState:
    incremental = reader.read_market(block, previous=previous)
    assert incremental == reader.read_market(block)
    return incremental


def test_an_incremental_read_equals_a_full_one_after_time_prices_and_borrows(
    devnet: Devnet, rpc: JsonRpcClient
) -> None:
    manifest = devnet.manifest
    reader = MarketReader(rpc, manifest.pool)
    first = reader.read_market(head(rpc))
    weth = manifest.reserve("WETH").asset.lower()

    jump(rpc, THIRTY_DAYS)
    jumped = _incremental_equals_full(reader, first, head(rpc))
    set_feed(rpc, manifest, "ETH / USD", 2_000 * 10**8)
    set_feed(rpc, manifest, "USDC / USD", 97_000_000)  # the 3.0.2 stablecoin eMode source
    priced = _incremental_equals_full(reader, jumped, head(rpc))
    build_users(rpc, manifest)
    jump(rpc, THIRTY_DAYS)
    borrowed = _incremental_equals_full(reader, priced, head(rpc))

    assert jumped.block_timestamp >= first.block_timestamp + THIRTY_DAYS
    assert priced.market.prices[weth] == 2_000 * 10**8 != first.market.prices[weth]
    usdc = manifest.reserve("USDC").asset.lower()
    assert priced.market.prices[usdc] == 97_000_000
    before, after = (s.market.reserve_by_asset(usdc) for s in (priced, borrowed))
    assert after.current_variable_borrow_rate != before.current_variable_borrow_rate
    assert after.variable_borrow_index > before.variable_borrow_index
    assert after.last_update_timestamp > before.last_update_timestamp
    # A later state serves for an earlier block too (a reorg's re-read).
    _incremental_equals_full(reader, borrowed, priced.block_number)


def test_a_configurator_emode_change_is_seen_by_a_full_read_only(
    devnet: Devnet, rpc: JsonRpcClient
) -> None:
    manifest = devnet.manifest
    reader = MarketReader(rpc, manifest.pool)
    before = reader.read_market(head(rpc))
    change_emode(rpc, manifest)
    block = head(rpc)

    stale = reader.read_market(block, previous=before)
    fresh = reader.read_market(block)

    # The documented limitation: an incremental read keeps the categories of ``previous``.
    assert stale.market.emode_categories == before.market.emode_categories
    assert fresh.market.emode_categories != before.market.emode_categories
    link = fresh.market.reserve_by_asset(manifest.reserve("LINK").asset.lower())
    if manifest.protocol_version == "3.6.0":
        category = fresh.market.emode_categories[3]
        assert (category.label, category.collateral_bitmap) == ("LINK boost", 1 << link.id)
    else:
        category = fresh.market.emode_categories[1]
        weth = manifest.reserve("WETH").asset.lower()
        assert (category.liquidation_threshold, category.price_source) == (9400, weth)
    # What the engine watches to know when to read in full: the configurator's logs.
    assert fresh.configurator == manifest.addresses["pool_configurator"].lower()
    logs = rpc.call(
        "eth_getLogs",
        [
            {
                "address": fresh.configurator,
                "fromBlock": hex(before.block_number + 1),
                "toBlock": hex(block),
            }
        ],
    )
    assert logs
    # Incremental reads that continue from the full read agree with full reads again.
    jump(rpc, THIRTY_DAYS)
    _incremental_equals_full(reader, fresh, head(rpc))
