"""Seed a deployed devnet market with many realistic borrowers, deterministically.

:func:`seed_market` first has the liquidity provider supply every asset, then gives each
user a randomized position: one to three collateral assets, zero to three debts, sizes
log-uniform from a dollar to whales, about 15 % eMode users, about 5 % with one supplied
asset disabled as collateral, a few dust positions (a handful of wei), a share borrowing
close to their limit (health factor just above 1), and on 3.0.2 stable-rate debt in
USDC/DAI. Positions are planned by :func:`plan_users`, a pure function of the seed and the
oracle prices; borrow amounts are fractions of each user's on-chain
``availableBorrowsBase`` read after supplying, so no borrow reverts.

Determinism: the same manifest, prices and seed give the same users and the same
``getUserAccountData``. Block time is frozen while seeding (no interest accrues between
phases), because transactions of different senders in one batch may be mined in any
order and, with time moving, that order would leak into the indices.

Transactions go through :class:`~overlord.devnet.transactions.TxSender` in phases, each
depending only on earlier phases or on the same sender's earlier transactions: liquidity,
mints (admin), approvals + eMode + supplies, collateral toggles, borrows.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from eth_utils.crypto import keccak

from overlord.chain import aave_abi
from overlord.chain.rpc import JsonRpcClient
from overlord.devnet.manifest import EModeInfo, FeedInfo, Manifest, ReserveInfo
from overlord.devnet.transactions import Tx, TxSender

Progress = Callable[[str, int, int], None]
"""``progress(stage, done, total)``."""

MAX_UINT256 = 2**256 - 1
STABLE_RATE = 1
VARIABLE_RATE = 2
PPM = 1_000_000
USD = 10**8  # the oracle's base currency unit (USD, 8 decimals)
CALL_BATCH = 500
SEND_SLICE = 2_000  # transactions per TxSender.send call: progress granularity

# Shares of the seeded population (see the module docstring).
DUST_SUPPLIER_SHARE = 0.015
EMODE_SHARE = 0.15
EXTRA_COLLATERAL_IN_EMODE = 0.2
DISABLE_COLLATERAL_SHARE = 0.1  # of users with two or more supplies: about 5 % of all
DEBT_COUNT_WEIGHTS = (20, 44, 24, 12)  # 0, 1, 2, 3 debts: 20 % of users borrow nothing
NEAR_MAX_SHARE = 0.2  # of borrowers: borrow 97-99.5 % of availableBorrowsBase
DUST_DEBT_SHARE = 0.03  # of borrowers: the first debt is a handful of wei
STABLE_SHARE = 0.3  # of eligible USDC/DAI debts on 3.0.2
MIN_POSITION_USD = 1.0
MAX_POSITION_USD = 5_000_000.0
# Popularity of each symbol as collateral, like a real market (unknown symbols get 10).
COLLATERAL_POPULARITY = {"WETH": 30, "wstETH": 15, "USDC": 20, "DAI": 10, "WBTC": 15, "LINK": 10}


@dataclass(frozen=True)
class PlannedSupply:
    """An asset a user supplies, in token units."""

    reserve: ReserveInfo
    amount: int


@dataclass(frozen=True)
class PlannedDebt:
    """A debt a user takes: a weighted share of its borrow budget, or a fixed dust amount."""

    reserve: ReserveInfo
    weight: int
    rate_mode: int  # STABLE_RATE (3.0.2 only) or VARIABLE_RATE
    fixed_amount: int | None = None


@dataclass(frozen=True)
class UserPlan:
    """Everything one seeded user does, decided before any transaction is sent."""

    address: str
    emode: int
    supplies: tuple[PlannedSupply, ...]
    disabled: ReserveInfo | None  # a supplied asset switched off as collateral
    borrow_ppm: int  # share of availableBorrowsBase to borrow, in millionths (< 995,001)
    debts: tuple[PlannedDebt, ...]


@dataclass(frozen=True)
class MarketView:
    """What planning needs from the manifest and the oracle."""

    manifest: Manifest
    prices: dict[str, int]  # lower-case asset -> oracle price (base currency units)

    @property
    def stable_debt(self) -> bool:
        """Whether the protocol has stable-rate debt (3.0.x)."""
        return self.manifest.protocol_version.startswith("3.0")

    def price(self, reserve: ReserveInfo) -> int:
        """The oracle price of ``reserve``'s asset."""
        return self.prices[reserve.asset.lower()]

    def category(self, emode: int) -> EModeInfo:
        """The eMode category ``emode``."""
        for category in self.manifest.emode_categories:
            if category.id == emode:
                return category
        raise KeyError(f"no eMode category {emode} in the manifest")

    def members(self, emode: int) -> list[ReserveInfo]:
        """The reserves of eMode category ``emode`` (its collateral and borrowable assets)."""
        assets = {asset.lower() for asset in self.category(emode).assets}
        return [r for r in self.manifest.reserves if r.asset.lower() in assets]

    def borrow_price(self, reserve: ReserveInfo, emode: int) -> int:
        """The price a borrow of ``reserve`` is valued at for a user in ``emode``.

        3.0.x values a borrow in an eMode category with a price source at that source's
        price (ValidationLogic.validateBorrow); later versions always use the asset's price.
        """
        if emode and self.stable_debt:
            source = self.category(emode).price_source
            if source is not None:
                return self.prices[source.lower()]
        return self.price(reserve)


def token_unit(token: ReserveInfo | FeedInfo) -> int:
    """``10 ** decimals`` of a reserve or feed."""
    return int(10**token.decimals)


def user_address(seed: int, index: int) -> str:
    """The deterministic address of seeded user ``index`` (lower-case hex)."""
    digest = keccak(b"overlord-devnet-user" + seed.to_bytes(8, "big") + index.to_bytes(8, "big"))
    return "0x" + digest[12:].hex()


def plan_users(market: MarketView, *, users: int, seed: int) -> tuple[UserPlan, ...]:
    """Plan ``users`` positions; a pure function of the market view and the seed."""
    rng = random.Random(seed)  # noqa: S311 - a reproducible simulation, not cryptography
    return tuple(_plan_user(rng, market, user_address(seed, i)) for i in range(users))


def _plan_user(rng: random.Random, market: MarketView, address: str) -> UserPlan:
    if rng.random() < DUST_SUPPLIER_SHARE:
        reserve = rng.choice(market.manifest.reserves)
        dust = PlannedSupply(reserve, rng.randint(1, 9))
        return UserPlan(address, 0, (dust,), None, 0, ())
    categories = [c.id for c in market.manifest.emode_categories]
    emode = rng.choice(categories) if categories and rng.random() < EMODE_SHARE else 0
    collateral = _choose_collateral(rng, market, emode)
    supplies = _size_supplies(rng, market, collateral)
    disabled = None
    if len(supplies) >= 2 and rng.random() < DISABLE_COLLATERAL_SHARE:
        disabled = rng.choice(supplies).reserve
    debts = _choose_debts(rng, market, emode, collateral)
    near_max = rng.random() < NEAR_MAX_SHARE
    borrow_ppm = rng.randint(970_000, 995_000) if near_max else rng.randint(50_000, 900_000)
    return UserPlan(address, emode, supplies, disabled, borrow_ppm if debts else 0, debts)


def _weighted_sample(
    rng: random.Random, reserves: Sequence[ReserveInfo], count: int
) -> list[ReserveInfo]:
    pool = list(reserves)
    chosen: list[ReserveInfo] = []
    while pool and len(chosen) < count:
        weights = [COLLATERAL_POPULARITY.get(r.symbol, 10) for r in pool]
        pick = rng.choices(pool, weights=weights)[0]
        pool.remove(pick)
        chosen.append(pick)
    return chosen


def _choose_collateral(rng: random.Random, market: MarketView, emode: int) -> list[ReserveInfo]:
    reserves = market.manifest.reserves
    if not emode:
        return _weighted_sample(rng, reserves, rng.randint(1, 3))
    members = market.members(emode)
    chosen = _weighted_sample(rng, members, rng.randint(1, len(members)))
    others = [r for r in reserves if r not in members]
    if others and rng.random() < EXTRA_COLLATERAL_IN_EMODE:
        chosen += _weighted_sample(rng, others, 1)
    return chosen


def _log_uniform(rng: random.Random, low: float, high: float) -> float:
    return math.exp(rng.uniform(math.log(low), math.log(high)))


def _size_supplies(
    rng: random.Random, market: MarketView, collateral: list[ReserveInfo]
) -> tuple[PlannedSupply, ...]:
    total_base = int(_log_uniform(rng, MIN_POSITION_USD, MAX_POSITION_USD) * USD)
    weights = [rng.randint(1, 100) for _ in collateral]
    supplies = []
    for reserve, weight in zip(collateral, weights, strict=True):
        base = total_base * weight // sum(weights)
        amount = max(1, base * token_unit(reserve) // market.price(reserve))
        supplies.append(PlannedSupply(reserve, amount))
    return tuple(supplies)


def _choose_debts(
    rng: random.Random, market: MarketView, emode: int, collateral: list[ReserveInfo]
) -> tuple[PlannedDebt, ...]:
    count = rng.choices(range(len(DEBT_COUNT_WEIGHTS)), weights=DEBT_COUNT_WEIGHTS)[0]
    # An eMode user may only borrow its category's assets (3.0.2: same category id;
    # 3.2+: the borrowable bitmap, which the deployer sets to the category members).
    candidates = market.members(emode) if emode else list(market.manifest.reserves)
    # People rarely borrow what they supply: prefer other assets, then allow the same.
    fresh = [r for r in candidates if r not in collateral]
    pool = rng.sample(fresh, min(count, len(fresh)))
    if len(pool) < count:
        rest = [r for r in candidates if r not in pool]
        pool += rng.sample(rest, min(count - len(pool), len(rest)))
    debts = []
    for reserve in pool:
        # 3.0.2 refuses stable debt in an asset the user has as collateral (unless the loan
        # exceeds the aToken balance): only take stable debt in assets not supplied.
        stable = (
            market.stable_debt
            and reserve.stable_borrowing
            and reserve not in collateral
            and rng.random() < STABLE_SHARE
        )
        debts.append(
            PlannedDebt(reserve, rng.randint(1, 100), STABLE_RATE if stable else VARIABLE_RATE)
        )
    if debts and rng.random() < DUST_DEBT_SHARE:
        first = debts[0]
        debts[0] = PlannedDebt(first.reserve, first.weight, first.rate_mode, rng.randint(1, 9))
    return tuple(debts)


def eth_calls(client: JsonRpcClient, calls: Sequence[tuple[str, str]]) -> list[str]:
    """The results of many ``eth_call`` s ``(to, calldata)`` at the latest block, batched."""
    requests = [("eth_call", [{"to": to, "data": data}, "latest"]) for to, data in calls]
    return [str(result) for result in client.batch(requests)]


def read_prices(client: JsonRpcClient, manifest: Manifest) -> dict[str, int]:
    """Every reserve's oracle price (``AaveOracle.getAssetsPrices``), by lower-case asset."""
    assets = [r.asset for r in manifest.reserves]
    data = aave_abi.GET_ASSETS_PRICES.encode(assets)
    (prices,) = aave_abi.GET_ASSETS_PRICES.decode(
        eth_calls(client, [(manifest.addresses["oracle"], data)])[0]
    )
    return {asset.lower(): int(price) for asset, price in zip(assets, prices, strict=True)}


def read_account_data(
    client: JsonRpcClient, manifest: Manifest, users: Sequence[str]
) -> list[tuple[int, ...]]:
    """``getUserAccountData`` of each user, in order (six integers each)."""
    calls = [(manifest.pool, aave_abi.GET_USER_ACCOUNT_DATA.encode(user)) for user in users]
    return [
        tuple(int(v) for v in aave_abi.GET_USER_ACCOUNT_DATA.decode(result))
        for result in eth_calls(client, calls)
    ]


@contextmanager
def frozen_time(client: JsonRpcClient) -> Iterator[None]:
    """Mine every block inside at the current head's timestamp (anvil's interval 0).

    anvil then ignores ``evm_increaseTime``; ``evm_mine`` with a timestamp still works.
    On exit the node's clock runs again.
    """
    head = client.call("eth_getBlockByNumber", ["latest", False])
    # Without this, a chain loaded from a state file stamps its next block with the wall
    # clock rather than the head's time.
    client.call("evm_setTime", [int(head["timestamp"], 16)])
    client.call("anvil_setBlockTimestampInterval", [0])
    try:
        yield
    finally:
        client.call("anvil_removeBlockTimestampInterval")


def seed_market(
    client: JsonRpcClient,
    manifest: Manifest,
    *,
    users: int,
    seed: int,
    progress: Progress | None = None,
) -> tuple[str, ...]:
    """Give the market liquidity and ``users`` seeded borrowers; return their addresses.

    Deterministic by ``seed`` on a given deployment (see the module docstring). Raises
    :class:`~overlord.devnet.transactions.TransactionFailed` if any transaction reverts,
    which would be a planning bug. ``progress(stage, done, total)`` is called as each
    phase advances (stages: liquidity, mint, supply, collateral, read, borrow).
    """
    if users < 0:
        raise ValueError(f"users must be >= 0, got {users}")
    report: Progress = progress or _silent
    sender = TxSender(client)
    market = MarketView(manifest, read_prices(client, manifest))
    plans = plan_users(market, users=users, seed=seed)
    with frozen_time(client):
        _provide_liquidity(sender, market, plans, report)
        _send_phase(sender, "mint", _mint_txs(manifest, plans), report)
        _send_phase(sender, "supply", _supply_txs(manifest, plans), report)
        _send_phase(sender, "collateral", _collateral_txs(manifest, plans), report)
        borrowers = [plan for plan in plans if plan.debts]
        report("read", 0, len(borrowers))
        accounts = read_account_data(client, manifest, [plan.address for plan in borrowers])
        report("read", len(borrowers), len(borrowers))
        available = [account[2] for account in accounts]
        _send_phase(sender, "borrow", _borrow_txs(market, borrowers, available), report)
    return tuple(plan.address for plan in plans)


def _silent(_stage: str, _done: int, _total: int) -> None:
    return None


def _send_phase(sender: TxSender, stage: str, txs: Sequence[Tx], report: Progress) -> None:
    # Slices keep same-sender order (each send is mined before the next) and let us report.
    report(stage, 0, len(txs))
    for start in range(0, len(txs), SEND_SLICE):
        sender.send(txs[start : start + SEND_SLICE])
        report(stage, min(start + SEND_SLICE, len(txs)), len(txs))


def _provide_liquidity(
    sender: TxSender, market: MarketView, plans: Sequence[UserPlan], report: Progress
) -> None:
    manifest = market.manifest
    admin, provider = manifest.accounts["admin"], manifest.accounts["liquidity_provider"]
    amounts = liquidity_amounts(market, plans)
    mints = [
        Tx(admin, r.asset, aave_abi.MINT.encode(provider, amounts[r.symbol]), f"mint LP {r.symbol}")
        for r in manifest.reserves
    ]
    supplies = []
    for r in manifest.reserves:
        supplies.append(_approve(provider, r, manifest.pool))
        supplies.append(_supply(provider, r, amounts[r.symbol], manifest.pool))
    total = len(mints) + len(supplies)
    report("liquidity", 0, total)
    sender.send(mints)  # the supplies depend on another sender's mints: a later send
    report("liquidity", len(mints), total)
    sender.send(supplies)
    report("liquidity", total, total)


def liquidity_amounts(market: MarketView, plans: Sequence[UserPlan]) -> dict[str, int]:
    """What the liquidity provider supplies of each reserve, in tokens, by symbol.

    Twice an upper bound of what all planned borrows can take from that reserve (every
    user at a 97 % LTV), plus four times the largest stable loan (3.0.2 lends at most 25 %
    of the available liquidity at a stable rate in one borrow), plus a million dollars.
    """
    bound = {r.symbol: 0 for r in market.manifest.reserves}
    stable = dict(bound)
    for plan in plans:
        if not plan.debts:
            continue
        collateral = sum(
            s.amount * market.price(s.reserve) // token_unit(s.reserve) for s in plan.supplies
        )
        cap = collateral * 97 * plan.borrow_ppm // (100 * PPM)
        weights = sum(d.weight for d in plan.debts if d.fixed_amount is None) or 1
        for debt in plan.debts:
            share = cap * debt.weight // weights
            bound[debt.reserve.symbol] += share
            if debt.rate_mode == STABLE_RATE:
                stable[debt.reserve.symbol] = max(stable[debt.reserve.symbol], share)
    amounts = {}
    for r in market.manifest.reserves:
        base = 2 * bound[r.symbol] + 4 * stable[r.symbol] + 1_000_000 * USD
        amounts[r.symbol] = base * token_unit(r) // market.price(r)
    return amounts


def _approve(owner: str, reserve: ReserveInfo, pool: str) -> Tx:
    return Tx(
        owner,
        reserve.asset,
        aave_abi.APPROVE.encode(pool, MAX_UINT256),
        f"{owner} approves {reserve.symbol}",
    )


def _supply(owner: str, reserve: ReserveInfo, amount: int, pool: str) -> Tx:
    return Tx(
        owner,
        pool,
        aave_abi.SUPPLY.encode(reserve.asset, amount, owner, 0),
        f"{owner} supplies {amount} {reserve.symbol}",
    )


def _mint_txs(manifest: Manifest, plans: Sequence[UserPlan]) -> list[Tx]:
    # Minted by the admin: the 3.6 TestnetERC20 mint is onlyOwner (3.0.2's is public).
    admin = manifest.accounts["admin"]
    return [
        Tx(
            admin,
            s.reserve.asset,
            aave_abi.MINT.encode(plan.address, s.amount),
            f"mint {s.amount} {s.reserve.symbol} to {plan.address}",
        )
        for plan in plans
        for s in plan.supplies
    ]


def _supply_txs(manifest: Manifest, plans: Sequence[UserPlan]) -> list[Tx]:
    txs = []
    for plan in plans:
        if plan.emode:
            txs.append(
                Tx(
                    plan.address,
                    manifest.pool,
                    aave_abi.SET_USER_EMODE.encode(plan.emode),
                    f"{plan.address} enters eMode {plan.emode}",
                )
            )
        for s in plan.supplies:
            txs.append(_approve(plan.address, s.reserve, manifest.pool))
            txs.append(_supply(plan.address, s.reserve, s.amount, manifest.pool))
    return txs


def _collateral_txs(manifest: Manifest, plans: Sequence[UserPlan]) -> list[Tx]:
    return [
        Tx(
            plan.address,
            manifest.pool,
            aave_abi.SET_USE_AS_COLLATERAL.encode(plan.disabled.asset, False),
            f"{plan.address} disables {plan.disabled.symbol} as collateral",
        )
        for plan in plans
        if plan.disabled is not None
    ]


def borrow_amounts(market: MarketView, plan: UserPlan, available: int) -> list[int]:
    """Token amounts of ``plan``'s debts given its ``availableBorrowsBase`` (0 = skip).

    The budget is ``available * borrow_ppm``, less one base unit per debt because 3.5+
    values each debt rounded up; each debt takes its weighted share at the price the
    Pool validates the borrow with.
    """
    budget = available * plan.borrow_ppm // PPM - len(plan.debts)
    weights = sum(d.weight for d in plan.debts if d.fixed_amount is None) or 1
    amounts = []
    for debt in plan.debts:
        if debt.fixed_amount is not None:
            amounts.append(debt.fixed_amount if budget > len(plan.debts) else 0)
            continue
        share = max(budget, 0) * debt.weight // weights
        price = market.borrow_price(debt.reserve, plan.emode)
        amounts.append(share * token_unit(debt.reserve) // price)
    return amounts


def _borrow_txs(
    market: MarketView, borrowers: Sequence[UserPlan], available: Sequence[int]
) -> list[Tx]:
    pool = market.manifest.pool
    txs = []
    for plan, limit in zip(borrowers, available, strict=True):
        for debt, amount in zip(plan.debts, borrow_amounts(market, plan, limit), strict=True):
            if amount <= 0:
                continue
            data = aave_abi.BORROW.encode(
                debt.reserve.asset, amount, debt.rate_mode, 0, plan.address
            )
            txs.append(
                Tx(
                    plan.address,
                    pool,
                    data,
                    f"{plan.address} borrows {amount} {debt.reserve.symbol}",
                )
            )
    return txs
