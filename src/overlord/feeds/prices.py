"""USD prices for valuation (profit, reports), from layered sources that say when they fail.

The prior system's PriceService read ``latestRoundData()``, assumed 8 decimals, checked
neither the round nor its age, and on any trouble answered with a hard-coded stub price
(``UNKNOWN = 1``), caching that too. Here:

* Each :class:`PriceLayer` either returns a price it can vouch for or raises
  :class:`PriceUnavailable` with the reason. :class:`ChainlinkLayer` reads a feed's
  ``decimals()`` and refuses a non-positive answer, an incomplete round, a stale round and an
  answer older than ``max_age_s`` of chain time; :class:`AaveOracleLayer` reads
  ``AaveOracle.getAssetPrice``; :class:`StubLayer` serves fixed prices, for when the user
  asks for them explicitly.
* :class:`PriceService` asks the layers in order. An answer from any layer but the first is a
  fallback: counted per layer and logged with the reasons the earlier layers gave. When no
  layer answers it raises :class:`UnknownPriceError`; it never makes a price up. Only
  successful prices are cached, for ``ttl_s`` of an injected clock.

These prices are for valuation only. The health-factor math uses ``AaveOracle`` prices in
the oracle's own base units, read per block by the market reader.

Errors::

    PriceError
    ├── PriceUnavailable      one layer cannot give a trustworthy price (the service tries the next)
    └── UnknownPriceError     no layer could (also a LookupError)

Logs go to ``overlord.prices`` with ``extra={...}`` fields; RPC URLs are never logged.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

from overlord.chain import aave_abi
from overlord.chain.abi import Function
from overlord.chain.rpc import RpcError, RpcTransportError

log = logging.getLogger("overlord.prices")

# AggregatorV3Interface: (roundId, answer, startedAt, updatedAt, answeredInRound).
LATEST_ROUND_DATA = Function(
    "latestRoundData()", ("uint80", "int256", "uint256", "uint256", "uint80")
)
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
_QUANTITY = re.compile(r"0x[0-9a-fA-F]{1,64}")


class PriceError(Exception):
    """Base of the price errors."""


class PriceUnavailable(PriceError):
    """One layer cannot give a trustworthy price for ``symbol``; ``reason`` says why."""

    def __init__(self, symbol: str, layer: str, reason: str) -> None:
        super().__init__(f"{layer} has no price for {symbol}: {reason}")
        self.symbol = symbol
        self.layer = layer
        self.reason = reason


class UnknownPriceError(PriceError, LookupError):
    """No layer could price ``symbol``; ``reasons`` maps each layer's name to its reason."""

    def __init__(self, symbol: str, reasons: Mapping[str, str]) -> None:
        detail = "; ".join(f"{layer}: {reason}" for layer, reason in reasons.items())
        super().__init__(f"no price for {symbol} ({detail or 'no layers'})")
        self.symbol = symbol
        self.reasons = dict(reasons)


@dataclass(frozen=True, slots=True)
class Price:
    """A USD price.

    Attributes:
        symbol: The symbol, upper-case.
        value: USD per whole unit, exact as the source gave it.
        layer: The name of the layer that produced it.
        updated_at: When the source last updated it (unix seconds, chain time), if it says.
    """

    symbol: str
    value: Decimal
    layer: str
    updated_at: int | None


class PriceLayer(Protocol):
    """One source of USD prices."""

    @property
    def name(self) -> str:
        """A short name for logs, metrics and errors (``"chainlink"``)."""
        ...

    def price(self, symbol: str) -> Price:
        """The price of ``symbol`` (any case).

        Raises:
            PriceUnavailable: This layer cannot give a trustworthy price.
        """
        ...


class RpcCaller(Protocol):
    """What the chain layers need of a JSON-RPC client (:class:`JsonRpcClient` is one)."""

    def call(self, method: str, params: Sequence[Any] = ()) -> Any:
        """One request's ``result``; raises :class:`RpcError`."""
        ...


class ChainlinkLayer:
    """Prices from Chainlink-style aggregators (``AggregatorV3Interface``).

    Every read takes the latest block, then reads ``latestRoundData()`` at that block, so the
    answer's age is measured in the same chain time as its ``updatedAt``. A feed's
    ``decimals()`` is read on first use and cached; it is never assumed. The price is
    ``answer / 10**decimals``, exactly.

    Refused, with the reason in the :class:`PriceUnavailable`: ``answer <= 0``;
    ``updatedAt == 0`` (an incomplete round); ``answeredInRound < roundId`` (a stale round);
    ``updatedAt`` after the block's timestamp; an answer more than ``max_age_s`` older than
    the block; a node error; and any answer that does not decode exactly (wrong length, not
    hex, bad padding).

    Args:
        client: The JSON-RPC client of the feeds' chain.
        feeds: Symbol (any case) → feed address.
        max_age_s: Oldest acceptable answer, in seconds of chain time. Pick it above the
            feed's heartbeat.
        name: The layer's name.

    Raises:
        ValueError: A feed address is not 20-byte hex, two symbols differ only in case, or
            ``max_age_s`` is not a positive integer.
    """

    def __init__(
        self,
        client: RpcCaller,
        feeds: Mapping[str, str],
        max_age_s: int = 3600,
        *,
        name: str = "chainlink",
    ) -> None:
        if isinstance(max_age_s, bool) or not isinstance(max_age_s, int) or max_age_s <= 0:
            raise ValueError(f"max_age_s must be a positive number of seconds, not {max_age_s!r}")
        self.name = name
        self.max_age_s = max_age_s
        self._client = client
        self._feeds = _by_symbol(feeds, "feed")
        self._decimals: dict[str, int] = {}

    def price(self, symbol: str) -> Price:
        """The feed's latest answer in USD; see the class docstring for what is refused."""
        key = _symbol(symbol)
        feed = self._feeds.get(key)
        if feed is None:
            raise PriceUnavailable(key, self.name, "no feed configured for this symbol")
        try:
            block_time, tag = _latest_block(self._client)
            decimals = self._feed_decimals(feed, tag)
            round_id, answer, _started, updated_at, answered_in = _eth_call(
                self._client, feed, LATEST_ROUND_DATA, tag
            )
        except RpcError as exc:
            raise PriceUnavailable(key, self.name, _rpc_reason(exc)) from exc
        problem = _round_problem(
            round_id, answer, updated_at, answered_in, block_time, self.max_age_s
        )
        if problem is not None:
            raise PriceUnavailable(key, self.name, f"feed {feed}: {problem}")
        return Price(key, _scaled(answer, decimals), self.name, updated_at)

    def _feed_decimals(self, feed: str, tag: str) -> int:
        if feed not in self._decimals:
            (decimals,) = _eth_call(self._client, feed, aave_abi.DECIMALS, tag)
            self._decimals[feed] = int(decimals)
        return self._decimals[feed]


class AaveOracleLayer:
    """Prices from ``AaveOracle.getAssetPrice(asset) / base_currency_unit``.

    Only for markets whose oracle base currency is USD, which this layer cannot check: the
    caller decides (Aave v3 markets on Ethereum, Base, Arbitrum and the devnet quote USD with
    ``BASE_CURRENCY_UNIT = 10**8``; some older markets quote ETH). A zero price (an asset
    without a source, or a broken one) is unavailable, as are node errors and malformed
    answers. The oracle does not say when its sources updated, so ``updated_at`` is ``None``.

    Args:
        client: The JSON-RPC client of the market's chain.
        oracle: The AaveOracle's address.
        assets: Symbol (any case) → the reserve's underlying asset address.
        base_currency_unit: ``AaveOracle.BASE_CURRENCY_UNIT``, a power of ten.
        name: The layer's name.

    Raises:
        ValueError: An address is not 20-byte hex, two symbols differ only in case, or
            ``base_currency_unit`` is not a positive power of ten.
    """

    def __init__(
        self,
        client: RpcCaller,
        oracle: str,
        assets: Mapping[str, str],
        base_currency_unit: int,
        *,
        name: str = "aave-oracle",
    ) -> None:
        digits = str(base_currency_unit)
        # A power of ten keeps the division exact; AaveOracle's unit always is one.
        if type(base_currency_unit) is not int or not re.fullmatch(r"10*", digits):
            raise ValueError(
                f"base_currency_unit must be a positive power of ten, not {base_currency_unit!r}"
            )
        self.name = name
        self.oracle = _address(oracle, "oracle")
        self._client = client
        self._assets = _by_symbol(assets, "asset")
        self._unit_decimals = len(digits) - 1

    def price(self, symbol: str) -> Price:
        """The oracle's price of the asset in USD; see the class docstring."""
        key = _symbol(symbol)
        asset = self._assets.get(key)
        if asset is None:
            raise PriceUnavailable(key, self.name, "no asset configured for this symbol")
        try:
            (raw,) = _eth_call(self._client, self.oracle, aave_abi.GET_ASSET_PRICE, "latest", asset)
        except RpcError as exc:
            raise PriceUnavailable(key, self.name, _rpc_reason(exc)) from exc
        if raw == 0:
            raise PriceUnavailable(key, self.name, f"the oracle prices asset {asset} at 0")
        return Price(key, _scaled(raw, self._unit_decimals), self.name, None)


class StubLayer:
    """Fixed prices. Construct it only when the user explicitly enabled stub prices.

    Args:
        prices: Symbol (any case) → USD price, a positive finite Decimal.
        name: The layer's name.

    Raises:
        ValueError: A price is not a positive finite Decimal, or two symbols differ only in
            case.
    """

    def __init__(self, prices: Mapping[str, Decimal], *, name: str = "stub") -> None:
        self.name = name
        self._prices: dict[str, Decimal] = {}
        for symbol, value in prices.items():
            key = _symbol(symbol)
            if key in self._prices:
                raise ValueError(f"stub price for {key} given twice")
            if not isinstance(value, Decimal) or not value.is_finite() or value <= 0:
                raise ValueError(f"stub price for {key} must be a positive Decimal, not {value!r}")
            self._prices[key] = value
        log.warning("stub prices enabled", extra={"symbols": sorted(self._prices)})

    def price(self, symbol: str) -> Price:
        """The fixed price of ``symbol``."""
        key = _symbol(symbol)
        if key not in self._prices:
            raise PriceUnavailable(key, self.name, "no stub price for this symbol")
        return Price(key, self._prices[key], self.name, None)


class PriceService:
    """USD prices from ``layers`` in order, with fallbacks counted and a TTL cache.

    A price from any layer after the first is a fallback: ``fallbacks[layer]`` and
    ``fallback_total`` count it (once, when fetched, not on cache hits) and a warning logs the
    reasons the earlier layers gave. Symbols are case-insensitive.

    Args:
        layers: The layers, most trusted first. Their names must differ.
        ttl_s: How long a successful price is served from the cache, in seconds of ``clock``;
            0 disables the cache. Failures are never cached.
        clock: Monotonic seconds; tests inject a fake one.

    Raises:
        ValueError: No layers, two layers with one name, or ``ttl_s`` negative or not finite.
    """

    def __init__(
        self,
        layers: Sequence[PriceLayer],
        ttl_s: float = 60,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not layers:
            raise ValueError("a PriceService needs at least one layer")
        names = [layer.name for layer in layers]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"price layer names must differ: {', '.join(duplicates)} repeated")
        if not (math.isfinite(ttl_s) and ttl_s >= 0):
            raise ValueError(f"ttl_s must be a non-negative number of seconds, not {ttl_s!r}")
        self.layers = tuple(layers)
        self.ttl_s = ttl_s
        self.fallbacks: Counter[str] = Counter()
        self._clock = clock
        self._cache: dict[str, tuple[float, Price]] = {}

    @property
    def fallback_total(self) -> int:
        """Prices fetched from a layer after the first, all layers together."""
        return sum(self.fallbacks.values())

    def price(self, symbol: str) -> Price:
        """The USD price of ``symbol`` from the first layer that has one.

        Raises:
            UnknownPriceError: Every layer refused; ``reasons`` says why, per layer.
        """
        key = _symbol(symbol)
        # The clock is read before the fetch, so a slow fetch shortens the entry's life
        # rather than stretching it.
        now = self._clock()
        cached = self._cache.get(key)
        if cached is not None:
            expires, price = cached
            if now < expires:
                return price
            del self._cache[key]  # expired: never served, even if every layer fails now
        reasons: dict[str, str] = {}
        for index, layer in enumerate(self.layers):
            try:
                price = layer.price(key)
            except PriceUnavailable as exc:
                reasons[layer.name] = exc.reason
                continue
            if index > 0:
                self._count_fallback(key, layer.name, reasons)
            if self.ttl_s > 0:
                self._cache[key] = (now + self.ttl_s, price)
            return price
        raise UnknownPriceError(key, reasons)

    def prices(self, symbols: Iterable[str]) -> dict[str, Price]:
        """:meth:`price` of each symbol, keyed by the upper-case symbol.

        Raises:
            UnknownPriceError: For the first symbol no layer could price.
        """
        return {_symbol(symbol): self.price(symbol) for symbol in symbols}

    def _count_fallback(self, symbol: str, layer: str, reasons: Mapping[str, str]) -> None:
        self.fallbacks[layer] += 1
        log.warning(
            "price from a fallback layer",
            extra={"symbol": symbol, "layer": layer, "reasons": dict(reasons)},
        )


def parse_chainlink_feeds(text: str) -> dict[str, str]:
    """Parse ``CHAINLINK_FEEDS``: ``"SYM:0xaddress,SYM2:0xaddress"``.

    Whitespace around entries, symbols and addresses is ignored; blank text means no feeds.

    Returns:
        Upper-case symbol → lower-case address.

    Raises:
        ValueError: An entry is empty, has no colon, an empty symbol or an address that is not
            20-byte hex, or repeats a symbol (case-insensitively); the message quotes it.
    """
    feeds: dict[str, str] = {}
    if not text.strip():
        return feeds
    for number, entry in enumerate(text.split(","), start=1):
        where = f"CHAINLINK_FEEDS entry {number} {entry.strip()!r}"
        symbol, colon, address = entry.partition(":")
        if not colon:
            raise ValueError(f"{where}: expected SYMBOL:0xADDRESS")
        key = _symbol(symbol)
        if not key:
            raise ValueError(f"{where}: the symbol is empty")
        if key in feeds:
            raise ValueError(f"{where}: {key} is already given")
        if not _ADDRESS.fullmatch(address.strip()):
            raise ValueError(f"{where}: {address.strip()!r} is not a 20-byte hex address")
        feeds[key] = address.strip().lower()
    return feeds


def _symbol(symbol: str) -> str:
    return symbol.strip().upper()


def _address(text: str, what: str) -> str:
    if not isinstance(text, str) or not _ADDRESS.fullmatch(text):
        raise ValueError(f"{what} {text!r} is not a 20-byte hex address")
    return text.lower()


def _by_symbol(addresses: Mapping[str, str], what: str) -> dict[str, str]:
    """``addresses`` keyed by upper-case symbol, validated and lower-cased."""
    result: dict[str, str] = {}
    for symbol, address in addresses.items():
        key = _symbol(symbol)
        if key in result:
            raise ValueError(f"{what} for {key} given twice")
        result[key] = _address(address, f"{what} for {key}")
    return result


def _scaled(value: int, decimals: int) -> Decimal:
    # Built from text, which is exact: Decimal division and scaleb round to the context.
    return Decimal(f"{value}E-{decimals}")


def _rpc_reason(exc: RpcError) -> str:
    if isinstance(exc, RpcTransportError):
        # Its message names the node's host; keep even that out of reasons and logs.
        return "the node could not be reached or did not answer"
    return str(exc)


def _latest_block(client: RpcCaller) -> tuple[int, str]:
    """The latest block's timestamp and its number as a block tag."""
    header = client.call("eth_getBlockByNumber", ["latest", False])
    if not isinstance(header, dict):
        raise RpcError("eth_getBlockByNumber", f"not a block header: {repr(header)[:80]}")
    number = _quantity(header.get("number"), "number")
    return _quantity(header.get("timestamp"), "timestamp"), hex(number)


def _quantity(value: object, field: str) -> int:
    if not isinstance(value, str) or not _QUANTITY.fullmatch(value):
        raise RpcError("eth_getBlockByNumber", f"block {field} {repr(value)[:80]} is not hex")
    return int(value, 16)


def _eth_call(
    client: RpcCaller, to: str, function: Function, tag: str, *args: object
) -> tuple[Any, ...]:
    """``function(*args)`` on ``to``, decoded exactly; raises :class:`RpcError` otherwise."""
    data = client.call("eth_call", [{"to": to, "data": function.encode(*args)}, tag])
    if not isinstance(data, str):
        raise RpcError(function.signature, f"the result {repr(data)[:80]} is not a hex string")
    if data == "0x":
        raise RpcError(function.signature, f"empty result: is there a contract at {to}?")
    return function.decode_hex(data)


def _round_problem(
    round_id: int, answer: int, updated_at: int, answered_in: int, now: int, max_age_s: int
) -> str | None:
    """Why a ``latestRoundData`` answer read at chain time ``now`` is not trustworthy."""
    if answer <= 0:
        return f"non-positive answer {answer}"
    if updated_at == 0:
        return f"incomplete round {round_id} (updatedAt is 0)"
    if answered_in < round_id:
        return f"stale round: round {round_id} was answered in round {answered_in}"
    if updated_at > now:
        return f"updatedAt {updated_at} is after the block's timestamp {now}"
    if now - updated_at > max_age_s:
        return f"the answer is {now - updated_at} s old, more than max_age_s {max_age_s}"
    return None
