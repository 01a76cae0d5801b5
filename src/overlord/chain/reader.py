"""Read an Aave v3 market and its users at one block, through batched ``eth_call``.

:class:`MarketReader` loads everything :func:`overlord.aave.calculate_user_account_data`
needs (spec: docs/aave-v3-math.md §0, §3, §4, §7) with one JSON-RPC batch per phase, chunked
by the client. Contracts:

* Every call names an explicit block number (hex), never ``"latest"``: a
  :class:`MarketState` and the users read against it describe one and the same chain state.
* Anything malformed (an error object, a revert where the getter must exist, a result of
  the wrong length or that does not decode) raises :class:`~overlord.chain.rpc.RpcError`
  naming the call and its target, never a wrong number. Only the version probes and a few
  getters that older Pools lack treat a revert as "absent".
* Addresses in the returned values are lower-case ``0x`` hex, as :mod:`overlord.aave` wants.

eMode categories from 3.2 on have no list to enumerate. The reader reads the collateral
configuration of *every* id 1..255 in one batch (255 small calls) and keeps the ids whose
liquidation threshold is non-zero, the Pool's own test for "this category exists"
(``validateSetUserEMode``; the configurator refuses a zero threshold, so a category never
goes back to zero). This makes no assumption about gaps between ids, where the UI data
provider assumes gaps of at most 2. Up to 3.1 the categories are the ids the reserves'
configuration words name (bits 168–175): only those change any number (membership and the
price override are both per reserve).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final

from overlord.aave import (
    EModeCategory,
    Market,
    ProtocolVersion,
    Reserve,
    ReserveConfiguration,
    StableDebt,
    UserAccount,
    UserReserve,
    VersionProbes,
    detect_protocol_version,
    rules_for,
)
from overlord.aave.configuration import flagged_reserves
from overlord.aave.market import GhoDiscount
from overlord.aave.versions import EModeLtv, EModeMembership
from overlord.chain import aave_abi as abi
from overlord.chain.abi import Function
from overlord.chain.batch import (
    BatchRequest,
    BlockHeader,
    EthCall,
    SymbolCall,
    block_tag,
    normalize_address,
    run_batch,
)
from overlord.chain.rpc import JsonRpcClient, RpcError

ZERO_ADDRESS: Final = "0x" + "00" * 20
MAX_EMODE_CATEGORY_ID: Final = 255

# Getters aave_abi.py does not have: version probes and the 3.3 GHO discount state.
RESERVE_INTEREST_RATE_STRATEGY = Function("RESERVE_INTEREST_RATE_STRATEGY()", ("address",))
GET_IS_EMODE_CATEGORY_ISOLATED = Function("getIsEModeCategoryIsolated(uint8)", ("bool",))
GET_DISCOUNT_PERCENT = Function("getDiscountPercent(address)", abi.U256)
GET_PREVIOUS_INDEX = Function("getPreviousIndex(address)", abi.U256)

# The market.


@dataclass(frozen=True, slots=True)
class ReserveTokens:
    """A reserve's token addresses, and the underlying's symbol and decimals.

    ``decimals`` is the Pool's (configuration bits 48–55), which is what the math uses.
    ``stable_debt_token`` is ``None`` from 3.2 on, where stable debt is gone.
    """

    asset: str
    a_token: str
    variable_debt_token: str
    stable_debt_token: str | None
    symbol: str
    decimals: int


@dataclass(frozen=True, slots=True)
class MarketState:
    """A market read at one block: the math's :class:`Market` and what the reader needs."""

    market: Market
    block_number: int
    block_timestamp: int
    tokens: Mapping[int, ReserveTokens]
    pool: str
    oracle: str
    pool_revision: int | None = None

    @property
    def version(self) -> ProtocolVersion:
        """The protocol version the market was read (and is computed) as."""
        return self.market.version


_PROBES: Final = {
    "has_liquidation_grace_period": (abi.GET_LIQUIDATION_GRACE_PERIOD, (ZERO_ADDRESS,)),
    "has_emode_collateral_bitmap": (abi.GET_EMODE_COLLATERAL_BITMAP, (0,)),
    "has_reserve_deficit": (abi.GET_RESERVE_DEFICIT, (ZERO_ADDRESS,)),
    "has_interest_rate_strategy": (RESERVE_INTEREST_RATE_STRATEGY, ()),
    "has_emode_ltvzero_bitmap": (abi.GET_EMODE_LTVZERO_BITMAP, (0,)),
    "has_isolated_emodes": (GET_IS_EMODE_CATEGORY_ISOLATED, (0,)),
}


@dataclass(frozen=True, slots=True)
class _PoolHead:
    """What the first phase learns: block header, version, reserve list, provider."""

    number: int
    timestamp: int
    version: ProtocolVersion
    pool_revision: int | None
    assets: tuple[str, ...]
    reserves_count: int | None
    provider: str


class MarketReader:
    """Reads one Pool's market and users at chosen blocks.

    Args:
        client: the JSON-RPC client (not thread-safe: one reader per thread).
        pool: the Pool proxy address.
        version: force the protocol version instead of detecting it (spec §0).
    """

    def __init__(
        self, client: JsonRpcClient, pool: str, *, version: ProtocolVersion | None = None
    ) -> None:
        self.client = client
        self.pool = normalize_address(pool)
        self.version = version

    def _run(self, requests: Mapping[Any, BatchRequest], block: int) -> dict[Any, Any]:
        return run_batch(self.client, requests, block) if requests else {}

    def _call(self, function: Function, *args: Any, optional: bool = False) -> EthCall:
        return EthCall(self.pool, function, args, optional)

    # Market phases.

    def read_market(self, block: int) -> MarketState:
        """Read the market as the Pool sees it at ``block`` (4 round trips at most).

        Raises:
            RpcError: a call failed or answered garbage; the message names it.
            VersionDetectionError: the version cannot be decided (only when not forced).
        """
        head = self._read_head(block)
        rules = rules_for(head.version)
        second = self._run(self._reserve_requests(head, rules.liquidation_grace_period), block)
        oracle = _address(second["oracle"])
        reserves, tokens = _build_reserves(head, second)
        third: dict[Any, BatchRequest] = {
            "prices": EthCall(oracle, abi.GET_ASSETS_PRICES, (head.assets,))
        }
        emode_ids = self._emode_ids(head.version, reserves.values(), second)
        third |= self._emode_requests(head.version, emode_ids)
        third_results = self._run(third, block)
        # Bitmap categories: their collateral configs came with the scan of phase two.
        categories = _build_emodes(head.version, emode_ids, {**second, **third_results})
        prices = _prices(head.assets, third_results["prices"])
        prices |= self._read_emode_prices(oracle, categories.values(), block)
        market = Market(
            version=head.version,
            reserves=MappingProxyType(reserves),
            prices=MappingProxyType(prices),
            emode_categories=MappingProxyType(categories),
            reserves_count=head.reserves_count,
        )
        return MarketState(
            market=market,
            block_number=head.number,
            block_timestamp=head.timestamp,
            tokens=MappingProxyType(tokens),
            pool=self.pool,
            oracle=oracle,
            pool_revision=head.pool_revision,
        )

    def _read_head(self, block: int) -> _PoolHead:
        requests: dict[Any, BatchRequest] = {
            "block": BlockHeader(),
            "revision": self._call(abi.POOL_REVISION, optional=self.version is not None),
            # 3.0.x Pools have no getReservesCount; the bound is then one past the top id,
            # which gives the same sums (ids above the top one hold no reserve).
            "count": self._call(abi.GET_RESERVES_COUNT, optional=True),
            "list": self._call(abi.GET_RESERVES_LIST),
            "provider": self._call(abi.ADDRESSES_PROVIDER),
        }
        if self.version is None:
            for name, (function, args) in _PROBES.items():
                requests[name] = self._call(function, *args, optional=True)
        results = self._run(requests, block)
        number, timestamp = results["block"]
        if number != block:
            raise RpcError("eth_getBlockByNumber", f"asked for block {block}, got {number}")
        return _PoolHead(
            number=number,
            timestamp=timestamp,
            version=self.version or _detect(results),
            pool_revision=results["revision"],
            assets=tuple(_address(asset) for asset in results["list"]),
            reserves_count=results["count"],
            provider=_address(results["provider"]),
        )

    def _reserve_requests(self, head: _PoolHead, grace_period: bool) -> dict[Any, BatchRequest]:
        requests: dict[Any, BatchRequest] = {
            "oracle": EthCall(head.provider, abi.GET_PRICE_ORACLE),
        }
        for asset in head.assets:
            requests["data", asset] = self._call(abi.GET_RESERVE_DATA, asset)
            requests["symbol", asset] = SymbolCall(asset)
            if grace_period:
                requests["grace", asset] = self._call(abi.GET_LIQUIDATION_GRACE_PERIOD, asset)
        if _uses_bitmaps(head.version):
            for category_id in range(1, MAX_EMODE_CATEGORY_ID + 1):
                requests["ecfg", category_id] = self._call(
                    abi.GET_EMODE_COLLATERAL_CONFIG, category_id
                )
        return requests

    # eMode.

    @staticmethod
    def _emode_ids(
        version: ProtocolVersion, reserves: Iterable[Reserve], results: Mapping[Any, Any]
    ) -> list[int]:
        if _uses_bitmaps(version):
            return [
                category_id
                for category_id in range(1, MAX_EMODE_CATEGORY_ID + 1)
                if results["ecfg", category_id][1] != 0  # liquidation threshold
            ]
        return sorted({r.configuration.emode_category for r in reserves} - {0})

    def _emode_requests(
        self, version: ProtocolVersion, category_ids: Sequence[int]
    ) -> dict[Any, BatchRequest]:
        requests: dict[Any, BatchRequest] = {}
        bitmaps = _uses_bitmaps(version)
        for category_id in category_ids:
            if not bitmaps:
                requests["edata", category_id] = self._call(
                    abi.GET_EMODE_CATEGORY_DATA, category_id
                )
                continue
            requests["ecoll", category_id] = self._call(
                abi.GET_EMODE_COLLATERAL_BITMAP, category_id
            )
            requests["eborrow", category_id] = self._call(
                abi.GET_EMODE_BORROWABLE_BITMAP, category_id
            )
            requests["elabel", category_id] = self._call(abi.GET_EMODE_LABEL, category_id)
            if rules_for(version).emode_ltv is EModeLtv.LTVZERO_BITMAP:
                requests["eltvzero", category_id] = self._call(
                    abi.GET_EMODE_LTVZERO_BITMAP, category_id
                )
        return requests

    def _read_emode_prices(
        self, oracle: str, categories: Iterable[EModeCategory], block: int
    ) -> dict[str, int]:
        """3.0/3.1: the oracle price of every category price source, as the Pool reads it."""
        sources = sorted({c.price_source for c in categories if c.price_source})
        requests: dict[Any, BatchRequest] = {
            source: EthCall(oracle, abi.GET_ASSET_PRICE, (source,)) for source in sources
        }
        return {source: int(price) for source, price in self._run(requests, block).items()}

    # Users.

    def read_users(self, users: Sequence[str], block: int, state: MarketState) -> list[UserAccount]:
        """Read each user's configuration, eMode and balances at ``block`` (2 round trips).

        Balances are read for every reserve whose borrowing or collateral bit is set: the
        scaled aToken and variable debt balances, on 3.0/3.1 the stable debt (principal,
        rate, timestamp) when the borrowing bit is set, on 3.3 the GHO discount state of a
        reserve without virtual accounting. ``state`` must be read at the same block.

        Raises:
            ValueError: a user is not an address, or ``state`` is of another block.
            RpcError: a call failed or answered garbage; the message names it.
        """
        if state.block_number != block:
            raise ValueError(f"market state of block {state.block_number}, users at {block}")
        addresses = [normalize_address(user) for user in users]
        first: dict[Any, BatchRequest] = {}
        for address in addresses:
            first["config", address] = self._call(abi.GET_USER_CONFIGURATION, address)
            first["emode", address] = self._call(abi.GET_USER_EMODE, address)
        heads = self._run(first, block)
        balances = self._run(_balance_requests(addresses, heads, state), block)
        return [_user_account(address, heads, balances, state) for address in addresses]

    def read_account_data(
        self, users: Sequence[str], block: int
    ) -> list[tuple[int, int, int, int, int, int]]:
        """``Pool.getUserAccountData(user)`` at ``block`` for each user, in order (1 round trip).

        Raises:
            ValueError: a user is not an address.
            RpcError: a call failed or answered garbage; the message names it.
        """
        addresses = [normalize_address(user) for user in users]
        requests: dict[Any, BatchRequest] = {
            address: self._call(abi.GET_USER_ACCOUNT_DATA, address) for address in addresses
        }
        results = self._run(requests, block)  # a repeated user is asked once
        return [_six(results[address]) for address in addresses]


# Pure helpers: decoding and assembling.


def _uses_bitmaps(version: ProtocolVersion) -> bool:
    """Whether eMode membership is a collateral bitmap (3.2+), not a reserve field."""
    return rules_for(version).emode_membership is EModeMembership.COLLATERAL_BITMAP


def _address(value: object) -> str:
    return normalize_address(str(value))


def _six(values: Sequence[Any]) -> tuple[int, int, int, int, int, int]:
    first, second, third, fourth, fifth, sixth = (int(value) for value in values)
    return first, second, third, fourth, fifth, sixth


def _detect(results: Mapping[str, Any]) -> ProtocolVersion:
    revision = results["revision"]
    probes = VersionProbes(
        pool_revision=int(revision),
        **{name: results[name] is not None for name in _PROBES},
    )
    return detect_protocol_version(probes)


def _reserve(asset: str, data: tuple[Any, ...], grace: int, results: Mapping[Any, Any]) -> Reserve:
    """A :class:`Reserve` from the legacy ``getReserveData`` struct (spec §7.1)."""
    symbol = results["symbol", asset]  # None when symbol() reverted
    return Reserve(
        id=int(data[7]),
        asset=asset,
        configuration=ReserveConfiguration.decode(int(data[0])),
        liquidity_index=int(data[1]),
        current_liquidity_rate=int(data[2]),
        variable_borrow_index=int(data[3]),
        current_variable_borrow_rate=int(data[4]),
        last_update_timestamp=int(data[6]),
        liquidation_grace_period_until=int(grace),
        symbol=symbol or "",
    )


def _build_reserves(
    head: _PoolHead, results: Mapping[Any, Any]
) -> tuple[dict[int, Reserve], dict[int, ReserveTokens]]:
    stable_debt = rules_for(head.version).stable_debt
    reserves: dict[int, Reserve] = {}
    tokens: dict[int, ReserveTokens] = {}
    for asset in head.assets:
        data = results["data", asset]
        reserve = _reserve(asset, data, results.get(("grace", asset)) or 0, results)
        if reserve.id in reserves:
            raise RpcError(
                "eth_call getReserveData(address)",
                f"{asset} has reserve id {reserve.id}, like {reserves[reserve.id].asset}",
            )
        reserves[reserve.id] = reserve
        stable = _address(data[9])
        tokens[reserve.id] = ReserveTokens(
            asset=asset,
            a_token=_address(data[8]),
            variable_debt_token=_address(data[10]),
            stable_debt_token=stable if stable_debt and stable != ZERO_ADDRESS else None,
            symbol=reserve.symbol,
            decimals=reserve.configuration.decimals,
        )
    return reserves, tokens


def _build_emodes(
    version: ProtocolVersion, category_ids: Sequence[int], results: Mapping[Any, Any]
) -> dict[int, EModeCategory]:
    categories: dict[int, EModeCategory] = {}
    for category_id in category_ids:
        if ("edata", category_id) in results:
            ltv, threshold, bonus, source, label = results["edata", category_id]
            price_source = _address(source)
            categories[category_id] = EModeCategory(
                id=category_id,
                ltv=int(ltv),
                liquidation_threshold=int(threshold),
                liquidation_bonus=int(bonus),
                label=str(label),
                price_source=None if price_source == ZERO_ADDRESS else price_source,
            )
            continue
        ltv, threshold, bonus = results["ecfg", category_id]
        categories[category_id] = EModeCategory(
            id=category_id,
            ltv=int(ltv),
            liquidation_threshold=int(threshold),
            liquidation_bonus=int(bonus),
            label=str(results["elabel", category_id]),
            collateral_bitmap=int(results["ecoll", category_id]),
            borrowable_bitmap=int(results["eborrow", category_id]),
            ltvzero_bitmap=int(results.get(("eltvzero", category_id)) or 0),
        )
    return categories


def _prices(assets: Sequence[str], prices: Sequence[int]) -> dict[str, int]:
    if len(prices) != len(assets):
        raise RpcError(
            "eth_call getAssetsPrices(address[])",
            f"{len(prices)} prices for {len(assets)} assets",
        )
    return {asset: int(price) for asset, price in zip(assets, prices, strict=True)}


def _balance_requests(
    addresses: Sequence[str], heads: Mapping[Any, Any], state: MarketState
) -> dict[Any, BatchRequest]:
    rules = state.market.rules
    requests: dict[Any, BatchRequest] = {}
    for address in addresses:
        for reserve_id, borrowing, _collateral in flagged_reserves(int(heads["config", address])):
            tokens = state.tokens.get(reserve_id)
            if tokens is None:  # a dropped reserve's gap: the Pool skips it too
                continue
            key = (address, reserve_id)
            requests[(*key, "a")] = EthCall(tokens.a_token, abi.SCALED_BALANCE_OF, (address,))
            requests[(*key, "v")] = EthCall(
                tokens.variable_debt_token, abi.SCALED_BALANCE_OF, (address,)
            )
            if not borrowing:
                continue
            if rules.stable_debt and tokens.stable_debt_token is not None:
                requests |= _stable_requests(key, tokens.stable_debt_token, address)
            reserve = state.market.reserves[reserve_id]
            if rules.gho_discounted_debt and not reserve.configuration.virtual_accounting_active:
                requests |= _gho_requests(key, tokens.variable_debt_token, address)
    return requests


def _stable_requests(key: tuple[str, int], token: str, address: str) -> dict[Any, BatchRequest]:
    return {
        (*key, "sp"): EthCall(token, abi.PRINCIPAL_BALANCE_OF, (address,)),
        (*key, "sr"): EthCall(token, abi.GET_USER_STABLE_RATE, (address,)),
        (*key, "st"): EthCall(token, abi.GET_USER_LAST_UPDATED, (address,)),
    }


def _gho_requests(key: tuple[str, int], token: str, address: str) -> dict[Any, BatchRequest]:
    return {
        (*key, "gp"): EthCall(token, GET_DISCOUNT_PERCENT, (address,)),
        (*key, "gi"): EthCall(token, GET_PREVIOUS_INDEX, (address,)),
    }


def _user_account(
    address: str, heads: Mapping[Any, Any], balances: Mapping[Any, Any], state: MarketState
) -> UserAccount:
    configuration = int(heads["config", address])
    emode = int(heads["emode", address])
    if emode > MAX_EMODE_CATEGORY_ID:
        raise RpcError("eth_call getUserEMode(address)", f"{address}: category {emode} > 255")
    positions: dict[int, UserReserve] = {}
    for reserve_id, _borrowing, _collateral in flagged_reserves(configuration):
        key = (address, reserve_id)
        if (*key, "a") not in balances:
            continue
        stable = None
        if (*key, "sp") in balances:
            stable = StableDebt(
                balances[(*key, "sp")], balances[(*key, "sr")], balances[(*key, "st")]
            )
        discount = None
        if (*key, "gp") in balances:
            discount = GhoDiscount(balances[(*key, "gp")], balances[(*key, "gi")])
        positions[reserve_id] = UserReserve(
            scaled_atoken_balance=balances[(*key, "a")],
            scaled_variable_debt=balances[(*key, "v")],
            stable_debt=stable,
            gho_discount=discount,
        )
    return UserAccount(
        address=address,
        configuration=configuration,
        emode_category=emode,
        positions=MappingProxyType(positions),
    )


__all__ = [
    "BatchRequest",
    "MarketReader",
    "MarketState",
    "ReserveTokens",
    "block_tag",
    "normalize_address",
    "run_batch",
]
