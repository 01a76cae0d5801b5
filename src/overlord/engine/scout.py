"""The price scout: pending oracle updates turned into detections before they are mined.

Each poll reads the node's pending transactions (``txpool_content``), keeps those that
update a watched feed (:mod:`overlord.feeds.decoders`), and for each feed the newest
pending update only (a newer one supersedes: same sender, higher nonce). Its prices are
predicted by simulation (:mod:`overlord.feeds.predict`) at the expected inclusion block
and time, and evaluated hypothetically by the engine (no state changes). The users it
would newly put underwater are returned with the trigger: transaction hash, raw
transaction and inclusion block. After inclusion, :meth:`PriceScout.check_included`
compares each prediction with the prices the mined block actually has.

Two intakes share the decode-predict-evaluate path: :meth:`PriceScout.poll` reads the
whole pool (nodes without a pending-transaction subscription), :meth:`PriceScout.consider`
takes one transaction pushed by ``newPendingTransactions``
(:mod:`overlord.engine.live`). Either way a transaction is evaluated once, and an update
older than one already evaluated for the same feed (same sender, lower nonce) is
superseded: skipped.

Not thread-safe: one thread (the price path) owns a scout and its client.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from overlord.aave import AccountData, Market
from overlord.chain.rpc import JsonRpcClient, RpcError
from overlord.engine.engine import Engine
from overlord.feeds.decoders import FeedUpdate, decode_update
from overlord.feeds.predict import METHOD_NOT_FOUND, PredictionUnavailable, PricePredictor

log = logging.getLogger("overlord.scout")
SEEN_LIMIT = 100_000  # transaction hashes remembered as evaluated or irrelevant


class StreamedAccounts(Mapping[str, AccountData]):
    """Accounts computed on demand, in the order a source yields them.

    Iterating hands out each account as soon as the source has computed it, so the first
    event can leave before the last account is known; ``len`` and lookups compute the rest.
    One thread at a time.
    """

    def __init__(self, source: Iterable[tuple[str, AccountData]]) -> None:
        self._source: Iterator[tuple[str, AccountData]] | None = iter(source)
        self._order: list[str] = []
        self._accounts: dict[str, AccountData] = {}

    def _pull(self) -> bool:
        if self._source is None:
            return False
        try:
            address, account = next(self._source)
        except StopIteration:
            self._source = None
            return False
        if address not in self._accounts:
            self._order.append(address)
        self._accounts[address] = account
        return True

    def __iter__(self) -> Iterator[str]:
        index = 0
        while index < len(self._order) or self._pull():
            if index < len(self._order):
                yield self._order[index]
                index += 1

    def __getitem__(self, address: str) -> AccountData:
        while address not in self._accounts and self._pull():
            pass
        return self._accounts[address]

    def __len__(self) -> int:
        while self._pull():
            pass
        return len(self._order)


@dataclass(frozen=True)
class PendingDetection:
    """Users a pending feed update will newly put underwater, with the prices it will set."""

    tx_hash: str
    raw_tx: str | None
    inclusion_block: int
    timestamp: int  # expected inclusion time
    update: FeedUpdate
    prices: Mapping[str, int]
    market: Market
    underwater: Mapping[str, AccountData]  # streamed: iterating computes them in order
    base_block: int  # the processed block the prediction starts from
    base_timestamp: int


@dataclass
class PriceScout:
    """Watches pending transactions for feed updates (see the module docstring)."""

    engine: Engine
    client: JsonRpcClient
    oracle: str
    watched: Mapping[str, set[str]]
    block_interval: int = 12
    predictions: dict[str, tuple[int, Mapping[str, int]]] = field(default_factory=dict)
    mismatches: int = 0
    checked: int = 0
    enabled: bool = True
    superseded: int = 0
    _seen: OrderedDict[str, None] = field(default_factory=OrderedDict)
    _newest: dict[str, tuple[str, int]] = field(default_factory=dict)  # feed -> (sender, nonce)

    def __post_init__(self) -> None:
        # One predictor for the scout's life: it remembers which method the node lacks.
        self.predictor = PricePredictor(self.client, self.oracle)

    def is_update(self, transaction: Mapping[str, Any]) -> bool:
        """Whether ``transaction`` (a JSON-RPC tx object) updates a watched feed; cheap (a
        selector lookup), so the intake can drop everything else before queueing."""
        return _update_of(transaction, self.watched) is not None

    def consider(self, transaction: Mapping[str, Any]) -> PendingDetection | None:
        """Evaluate one pending transaction, unless seen, irrelevant or superseded."""
        state = self.engine.state
        tx_hash = str(transaction.get("hash", ""))
        if state is None or tx_hash in self._seen:
            return None
        self._remember(tx_hash)
        update = _update_of(transaction, self.watched)
        if update is None:
            return None
        sender, nonce = str(transaction.get("from", "")).lower(), _nonce(transaction)
        newest = self._newest.get(update.feed)
        if newest is not None and newest[0] == sender and newest[1] > nonce:
            self.superseded += 1
            return None
        self._newest[update.feed] = (sender, nonce)
        return self._evaluate(dict(transaction), update, state.market.reserves)

    def _remember(self, tx_hash: str) -> None:
        self._seen[tx_hash] = None
        if len(self._seen) > SEEN_LIMIT:
            self._seen.popitem(last=False)

    def poll(self) -> list[PendingDetection]:
        """Evaluate the pending feed updates not seen before."""
        state = self.engine.state
        if state is None or not self.enabled:
            return []
        try:
            pool = self.client.call("txpool_content")
        except RpcError as exc:
            if exc.code == METHOD_NOT_FOUND:
                self.enabled = False  # this node does not share its mempool: mined blocks only
                log.warning("the node has no txpool_content: pending updates are not watched")
            else:
                log.warning("cannot read pending transactions", extra={"error": str(exc)})
            return []
        detections = []
        for transaction in self._pending_in_nonce_order(pool):
            detection = self.consider(transaction)
            if detection is not None:
                detections.append(detection)
        return detections

    @staticmethod
    def _pending_in_nonce_order(pool: Any) -> list[dict[str, Any]]:
        """The pool's pending transactions, each sender's newest first: :meth:`consider`
        then evaluates the newest update of a feed and skips the older ones it supersedes."""
        pending: list[dict[str, Any]] = []
        for by_nonce in (pool.get("pending") or {}).values():
            pending += sorted(by_nonce.values(), key=_nonce, reverse=True)
        return pending

    def _evaluate(
        self, transaction: dict[str, Any], update: FeedUpdate, reserves: Mapping[int, Any]
    ) -> PendingDetection | None:
        state = self.engine.state
        assert state is not None
        tx_hash = str(transaction["hash"])
        self._remember(tx_hash)
        inclusion = state.block_number + 1
        timestamp = state.block_timestamp + self.block_interval
        assets = [reserve.asset for reserve in reserves.values()]
        try:
            prices = self.predictor.predict(transaction, assets, timestamp=timestamp).prices
        except PredictionUnavailable as exc:
            log.warning("cannot predict a pending update", extra={"tx": tx_hash, "error": str(exc)})
            return None
        current = set(self.engine.underwater)
        hypothesis = self.engine.screen_prices(prices, now=timestamp)
        newly = StreamedAccounts(
            (address, data)
            for address, data in self.engine.confirm_hypothesis(hypothesis)
            if address not in current
        )
        self.predictions[tx_hash] = (inclusion, prices)
        raw = self._raw(tx_hash)
        log.info(
            "pending feed update",
            extra={
                "tx": tx_hash,
                "feed": update.feed,
                "method": update.method,
                "inclusion_block": inclusion,
                "candidates": len(hypothesis.candidates),
            },
        )
        return PendingDetection(
            tx_hash,
            raw,
            inclusion,
            timestamp,
            update,
            prices,
            hypothesis.market,
            newly,
            state.block_number,
            state.block_timestamp,
        )

    def _raw(self, tx_hash: str) -> str | None:
        try:
            raw = self.client.call("eth_getRawTransactionByHash", [tx_hash])
        except RpcError:
            return None  # not every node serves raw pending transactions
        return raw if isinstance(raw, str) else None

    def check_included(self) -> None:
        """Compare the predictions of mined updates with the prices their block has."""
        state = self.engine.state
        if state is None:
            return
        for tx_hash, (_inclusion, predicted) in list(self.predictions.items()):
            receipt = self.client.call("eth_getTransactionReceipt", [tx_hash])
            if receipt is None:
                continue
            block = int(receipt["blockNumber"], 16)
            if block > state.block_number:
                continue  # the engine has not processed that block yet
            del self.predictions[tx_hash]
            if block != state.block_number:
                continue  # mined in a block we skipped over: no like-for-like comparison
            self.checked += 1
            actual = {asset: state.market.prices[asset] for asset in predicted}
            if actual != dict(predicted):
                self.mismatches += 1
                log.warning(
                    "predicted prices differ from the mined block's",
                    extra={"tx": tx_hash, "block": block},
                )


def _update_of(
    transaction: Mapping[str, Any], watched: Mapping[str, set[str]]
) -> FeedUpdate | None:
    to = transaction.get("to")
    data = transaction.get("input", transaction.get("data", ""))
    return decode_update(to if isinstance(to, str) else None, str(data), watched)


def _nonce(transaction: Mapping[str, Any]) -> int:
    try:
        return int(str(transaction.get("nonce", "0x0")), 16)
    except ValueError:
        return 0
