"""Read an Aave v3 market and its users at one block, through batched ``eth_call``.

:class:`MarketReader` loads everything :func:`overlord.aave.calculate_user_account_data`
needs (spec: docs/aave-v3-math.md §0, §3, §4, §7) with one JSON-RPC batch per phase, chunked
by the client. Contracts:

* Every call names an explicit block number (hex), never ``"latest"``: a
  :class:`MarketState` and the users read against it describe one and the same chain state.
* Anything malformed (an error object, a revert where the getter must exist, a result of
  the wrong length or that does not decode) raises :class:`~overlord.chain.rpc.RpcError`
  naming the call and its target, never a wrong number. Only the version probes, a few
  getters that older Pools lack, and the guessed price calls of an incremental read (asked
  again, as errors, when they were needed) treat a revert as "absent".
* Addresses in the returned values are lower-case ``0x`` hex, as :mod:`overlord.aave` wants.

The engine reads the market on every block. A full read costs version probes, every
symbol and, from 3.2, 255 eMode calls; an incremental read (``read_market(block,
previous=state)``) reuses those from the previous state and reads only what moves without
a PoolConfigurator event, usually in one round trip (the contract, and the caller's side
of it, are in :meth:`MarketReader.read_market`).

eMode categories from 3.2 on have no list to enumerate. A full read reads the collateral
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
from overlord.chain.rpc import JsonRpcClient, RpcError, RpcMalformedError

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
    """A market read at one block: the math's :class:`Market` and what the reader needs.

    ``provider`` is the Pool's PoolAddressesProvider and ``configurator`` its
    PoolConfigurator: the contract whose events oblige a caller of incremental reads to
    read in full again (see :meth:`MarketReader.read_market`). Both are ``None`` only in
    states not made by a reader.
    """

    market: Market
    block_number: int
    block_timestamp: int
    tokens: Mapping[int, ReserveTokens]
    pool: str
    oracle: str
    pool_revision: int | None = None
    provider: str | None = None
    configurator: str | None = None

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

    def read_market(self, block: int, *, previous: MarketState | None = None) -> MarketState:
        """Read the market as the Pool sees it at ``block``.

        Without ``previous``, a full read (4 round trips at most): version probes, every
        reserve's symbol, and all eMode categories (from 3.2 the scan of ids 1..255).

        With ``previous``, a state this reader read earlier for this Pool (at any block,
        earlier or later), an incremental read that trusts ``previous`` for what only the
        PoolConfigurator or a Pool upgrade changes:

        * the protocol version: no probes. ``POOL_REVISION`` and ``ADDRESSES_PROVIDER``
          are still read, and if either differs from ``previous`` the read is a full one;
        * the symbol of every asset ``previous`` has (a new asset's symbol is read);
        * the eMode categories: from 3.2, those of ``previous`` as they are (ids, LTVs,
          thresholds, bonuses, labels, bitmaps); up to 3.1, the data of the ids
          ``previous`` has, for the ids the reserves' configuration words name at
          ``block`` (an id newly named is read, one no longer named is dropped, as a full
          read does).

        Everything else is read at ``block`` as in a full read: the header, the revision,
        the reserves list and count, the oracle and configurator addresses, every
        reserve's ``getReserveData`` (indexes, rates, timestamp, configuration word,
        token addresses) and from 3.1 its grace period, the prices of all assets, and up
        to 3.1 the price of every eMode price source. In the usual case (same reserves
        list, same oracle) that is one round trip: the prices are asked of the oracle of
        ``previous`` in the same batch, and asked again of the new oracle only if the
        oracle address or the list changed.

        The caller's side of the contract: ``previous`` must be of a block with no
        PoolConfigurator event (``state.configurator``; eMode categories and asset eMode
        membership among them) and no Pool upgrade between it and ``block``. After one, or
        when unsure (a reorg across one, a changed ``configurator`` address), read in
        full (``previous=None``) and continue from that state. Symbols are never read
        again: a token that renames itself keeps its old symbol until a full read.

        Raises:
            ValueError: ``previous`` is of another Pool, not made by a reader, or of
                another version than the one this reader forces.
            RpcError: a call failed or answered garbage; the message names it.
            VersionDetectionError: the version cannot be decided (only when not forced).
        """
        if previous is None:
            return self._read_full(block)
        return self._read_incremental(block, previous, self._provider_of(previous))

    def _provider_of(self, previous: MarketState) -> str:
        """The provider of ``previous``, once checked that the state can serve as one."""
        if previous.pool != self.pool:
            raise ValueError(f"previous state is of Pool {previous.pool}, not {self.pool}")
        if previous.provider is None:
            raise ValueError("previous state has no addresses provider: not read by a reader")
        if self.version is not None and previous.version is not self.version:
            raise ValueError(
                f"previous state read as {previous.version.value}, "
                f"this reader forces {self.version.value}"
            )
        return previous.provider

    def _read_full(self, block: int) -> MarketState:
        head = self._parse_head(
            block, self._run(self._head_requests(probes=self.version is None), block), self.version
        )
        requests = _provider_requests(head.provider)
        requests |= self._reserve_requests(head.assets, head.version, symbols=True)
        if _uses_bitmaps(head.version):
            requests |= self._scan_requests()
        second = self._run(requests, block)
        oracle = _address(second["oracle"])
        reserves, tokens = _build_reserves(head, second)
        emode_ids = self._emode_ids(head.version, reserves.values(), second)
        third: dict[Any, BatchRequest] = {
            "prices": EthCall(oracle, abi.GET_ASSETS_PRICES, (head.assets,))
        }
        third |= self._emode_requests(head.version, emode_ids)
        third_results = self._run(third, block)
        # Bitmap categories: their collateral configs came with the scan of phase two.
        categories = _build_emodes(head.version, emode_ids, {**second, **third_results})
        prices = _prices(head.assets, third_results["prices"])
        prices |= self._emode_prices(oracle, categories.values(), {}, block)
        return self._state(head, second, reserves, tokens, prices, categories)

    def _read_incremental(self, block: int, previous: MarketState, provider: str) -> MarketState:
        known = tuple(tokens.asset for tokens in previous.tokens.values())
        first = self._run(self._incremental_requests(previous, provider, known), block)
        head = self._parse_head(block, first, previous.version)
        if (head.pool_revision, head.provider) != (previous.pool_revision, previous.provider):
            return self._read_full(block)  # an upgrade: getters and eMode may all differ
        oracle = _address(first["oracle"])
        same_oracle = oracle == previous.oracle
        guessed_prices = first["guess_prices"] if same_oracle and head.assets == known else None
        # Reserves new to ``previous``, with their symbols, and the prices if the guess failed.
        second = self._reserve_requests(
            tuple(a for a in head.assets if ("data", a) not in first), head.version, symbols=True
        )
        if guessed_prices is None:
            second["prices"] = EthCall(oracle, abi.GET_ASSETS_PRICES, (head.assets,))
        results = first | self._run(second, block)
        for tokens in previous.tokens.values():
            results.setdefault(("symbol", tokens.asset), tokens.symbol)
        reserves, tokens_by_id = _build_reserves(head, results)
        categories = self._reuse_emodes(head.version, reserves.values(), previous, block)
        prices = _prices(
            head.assets, results["prices"] if guessed_prices is None else guessed_prices
        )
        guessed = {
            source: first["guess_source", source]
            for source in _price_sources(previous.market.emode_categories.values())
        }
        prices |= self._emode_prices(
            oracle, categories.values(), guessed if same_oracle else {}, block
        )
        return self._state(head, results, reserves, tokens_by_id, prices, categories)

    def _incremental_requests(
        self, previous: MarketState, provider: str, known: tuple[str, ...]
    ) -> dict[Any, BatchRequest]:
        """One batch: the head, the reserves of ``previous``, prices from its oracle.

        The price calls are guesses (the oracle or the list may have changed, and an old
        oracle may revert for an asset since dropped), so a revert is no error here.
        """
        requests = self._head_requests(probes=False) | _provider_requests(provider)
        requests |= self._reserve_requests(known, previous.version, symbols=False)
        requests["guess_prices"] = EthCall(
            previous.oracle, abi.GET_ASSETS_PRICES, (known,), optional=True
        )
        for source in _price_sources(previous.market.emode_categories.values()):
            requests["guess_source", source] = EthCall(
                previous.oracle, abi.GET_ASSET_PRICE, (source,), optional=True
            )
        return requests

    def _state(
        self,
        head: _PoolHead,
        addresses: Mapping[Any, Any],
        reserves: dict[int, Reserve],
        tokens: dict[int, ReserveTokens],
        prices: dict[str, int],
        categories: dict[int, EModeCategory],
    ) -> MarketState:
        for reserve in reserves.values():
            if reserve.last_update_timestamp > head.timestamp:
                # Answers that cannot be of one block (seen on anvil while blocks are
                # mined): refused here, so no caller computes with them.
                raise RpcMalformedError(
                    "getReserveData",
                    f"inconsistent answers at block {head.number}: reserve {reserve.asset} "
                    f"updated at {reserve.last_update_timestamp}, after the block's "
                    f"timestamp {head.timestamp}",
                )
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
            oracle=_address(addresses["oracle"]),
            pool_revision=head.pool_revision,
            provider=head.provider,
            configurator=_address(addresses["configurator"]),
        )

    def _head_requests(self, *, probes: bool) -> dict[Any, BatchRequest]:
        requests: dict[Any, BatchRequest] = {
            "block": BlockHeader(),
            "revision": self._call(abi.POOL_REVISION, optional=self.version is not None),
            # 3.0.x Pools have no getReservesCount; the bound is then one past the top id,
            # which gives the same sums (ids above the top one hold no reserve).
            "count": self._call(abi.GET_RESERVES_COUNT, optional=True),
            "list": self._call(abi.GET_RESERVES_LIST),
            "provider": self._call(abi.ADDRESSES_PROVIDER),
        }
        if probes:
            for name, (function, args) in _PROBES.items():
                requests[name] = self._call(function, *args, optional=True)
        return requests

    @staticmethod
    def _parse_head(
        block: int, results: Mapping[Any, Any], version: ProtocolVersion | None
    ) -> _PoolHead:
        number, timestamp = results["block"]
        if number != block:
            raise RpcError("eth_getBlockByNumber", f"asked for block {block}, got {number}")
        return _PoolHead(
            number=number,
            timestamp=timestamp,
            version=version or _detect(results),
            pool_revision=results["revision"],
            assets=tuple(_address(asset) for asset in results["list"]),
            reserves_count=results["count"],
            provider=_address(results["provider"]),
        )

    def _reserve_requests(
        self, assets: Sequence[str], version: ProtocolVersion, *, symbols: bool
    ) -> dict[Any, BatchRequest]:
        grace_period = rules_for(version).liquidation_grace_period
        requests: dict[Any, BatchRequest] = {}
        for asset in assets:
            requests["data", asset] = self._call(abi.GET_RESERVE_DATA, asset)
            if symbols:
                requests["symbol", asset] = SymbolCall(asset)
            if grace_period:
                requests["grace", asset] = self._call(abi.GET_LIQUIDATION_GRACE_PERIOD, asset)
        return requests

    def _scan_requests(self) -> dict[Any, BatchRequest]:
        """3.2+: the collateral configuration of every possible eMode id."""
        return {
            ("ecfg", category_id): self._call(abi.GET_EMODE_COLLATERAL_CONFIG, category_id)
            for category_id in range(1, MAX_EMODE_CATEGORY_ID + 1)
        }

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

    def _reuse_emodes(
        self,
        version: ProtocolVersion,
        reserves: Iterable[Reserve],
        previous: MarketState,
        block: int,
    ) -> dict[int, EModeCategory]:
        """The categories of ``previous``; up to 3.1 those named now, new ones read."""
        known = previous.market.emode_categories
        if _uses_bitmaps(version):
            return dict(known)
        category_ids = self._emode_ids(version, reserves, {})
        new_ids = [category_id for category_id in category_ids if category_id not in known]
        read = self._run(self._emode_requests(version, new_ids), block)
        new = _build_emodes(version, new_ids, read)
        return {i: known[i] if i in known else new[i] for i in category_ids}

    def _emode_prices(
        self,
        oracle: str,
        categories: Iterable[EModeCategory],
        guessed: Mapping[str, int | None],
        block: int,
    ) -> dict[str, int]:
        """3.0/3.1: the oracle price of every category price source, as the Pool reads it.

        ``guessed`` holds prices already asked of ``oracle`` at ``block`` (``None`` if the
        call reverted); the others are asked now.
        """
        sources = _price_sources(categories)
        prices = {s: int(p) for s in sources if (p := guessed.get(s)) is not None}
        requests: dict[Any, BatchRequest] = {
            source: EthCall(oracle, abi.GET_ASSET_PRICE, (source,))
            for source in sources
            if source not in prices
        }
        return prices | {source: int(price) for source, price in self._run(requests, block).items()}

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

    def read_account_data_or_revert(
        self, users: Sequence[str], block: int
    ) -> list[tuple[int, int, int, int, int, int] | None]:
        """:meth:`read_account_data`, with ``None`` for a user whose call the Pool reverts
        (its math overflows for that user, say), where that method raises."""
        addresses = [normalize_address(user) for user in users]
        requests: dict[Any, BatchRequest] = {
            address: self._call(abi.GET_USER_ACCOUNT_DATA, address, optional=True)
            for address in addresses
        }
        results = self._run(requests, block)
        return [
            None if results[address] is None else _six(results[address]) for address in addresses
        ]


# Pure helpers: decoding and assembling.


def _uses_bitmaps(version: ProtocolVersion) -> bool:
    """Whether eMode membership is a collateral bitmap (3.2+), not a reserve field."""
    return rules_for(version).emode_membership is EModeMembership.COLLATERAL_BITMAP


def _provider_requests(provider: str) -> dict[Any, BatchRequest]:
    return {
        "oracle": EthCall(provider, abi.GET_PRICE_ORACLE),
        "configurator": EthCall(provider, abi.GET_POOL_CONFIGURATOR),
    }


def _price_sources(categories: Iterable[EModeCategory]) -> list[str]:
    """The 3.0/3.1 eMode price sources, sorted (none from 3.2 on)."""
    return sorted({c.price_source for c in categories if c.price_source})


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
