"""Drive real liquidations on the devnet and compare them with the exact math's prediction.

A case opens a position for a fresh user, moves a price (or the wstETH ratio, or time), then
asks ``simulate_liquidation`` / ``max_liquidation`` what ``liquidationCall`` will do in the
next block, at that block's timestamp, from the state at the block before. The liquidation
is then mined alone in that block and its event and token movements are compared with the
prediction, wei for wei; a predicted rejection must revert with the same error.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from eth_abi.abi import decode

from overlord.aave import (
    Liquidation,
    LiquidationRejected,
    LiquidationResult,
    max_liquidation,
    simulate_liquidation,
)
from overlord.chain import aave_abi as abi
from overlord.chain.aave_abi import LIQUIDATION_CALL_TOPIC
from overlord.chain.abi import event_topic
from overlord.chain.reader import MarketReader
from overlord.chain.rpc import JsonRpcClient, RpcError
from overlord.devnet.manifest import Manifest
from overlord.devnet.transactions import Tx, TxSender

MAX_UINT = 2**256 - 1
TRANSFER = event_topic("Transfer(address,address,uint256)")
COLLATERAL_DISABLED = event_topic("ReserveUsedAsCollateralDisabled(address,address)")
ERROR_CODES_V302 = {
    "27": "ReserveInactive",
    "29": "ReservePaused",
    "45": "HealthFactorNotBelowThreshold",
    "46": "CollateralCannotBeLiquidated",
    "47": "SpecifiedCurrencyNotBorrowedByUser",
    "59": "PriceOracleSentinelCheckFailed",
}


def _topic_address(topic: str) -> str:
    return "0x" + topic[-40:]


@dataclass(frozen=True)
class Outcome:
    """What the chain did with one liquidation call."""

    prediction: LiquidationResult
    succeeded: bool
    debt_repaid: int = 0
    collateral_to_liquidator: int = 0
    protocol_fee: int = 0
    collateral_flag_cleared: bool = False
    revert_reason: str | None = None
    liquidator_debt_spent: int = 0
    liquidator_collateral_received: int = 0


class Harness:
    """Positions, prices and liquidations on one devnet."""

    def __init__(self, rpc: JsonRpcClient, manifest: Manifest) -> None:
        self.rpc = rpc
        self.manifest = manifest
        self.sender = TxSender(rpc)
        self.admin = manifest.accounts["admin"]
        self.liquidator = manifest.accounts["liquidator"].lower()
        self.treasury = manifest.accounts["treasury"].lower()
        self.reader = MarketReader(rpc, manifest.pool)
        self._users = 0
        self._fund_liquidator()
        self._add_liquidity()

    def units(self, symbol: str, amount: Decimal | int | str) -> int:
        """Whole-token ``amount`` of ``symbol`` in its smallest unit."""
        return int(Decimal(amount) * 10 ** self.manifest.reserve(symbol).decimals)

    def _mint(self, symbol: str, to: str, amount: int) -> Tx:
        return Tx(
            self.admin,
            self.manifest.reserve(symbol).asset,
            abi.MINT.encode(to, amount),
            f"mint {symbol}",
        )

    def _fund_liquidator(self) -> None:
        reserves = self.manifest.reserves
        self.sender.send(
            [self._mint(r.symbol, self.liquidator, self.units(r.symbol, 10**9)) for r in reserves]
        )
        self.sender.send(
            [
                Tx(
                    self.liquidator,
                    r.asset,
                    abi.APPROVE.encode(self.manifest.pool, MAX_UINT),
                    "approve",
                )
                for r in reserves
            ]
        )

    def _add_liquidity(self) -> None:
        provider = self.manifest.accounts["liquidity_provider"]
        pool, reserves = self.manifest.pool, self.manifest.reserves
        self.sender.send(
            [self._mint(r.symbol, provider, self.units(r.symbol, 10**8)) for r in reserves]
        )
        self.sender.send(
            [
                tx
                for r in reserves
                for tx in (
                    Tx(provider, r.asset, abi.APPROVE.encode(pool, MAX_UINT), "approve"),
                    Tx(
                        provider,
                        pool,
                        abi.SUPPLY.encode(r.asset, self.units(r.symbol, 10**8), provider, 0),
                        "supply",
                    ),
                )
            ]
        )

    def new_user(self) -> str:
        """A fresh address."""
        self._users += 1
        return f"0x{0xC0FFEE00000 + self._users:040x}"

    def open_position(
        self,
        user: str,
        collateral: dict[str, str],
        debt: dict[str, str],
        *,
        emode: int = 0,
        stable: frozenset[str] = frozenset(),
        disabled_collateral: frozenset[str] = frozenset(),
    ) -> None:
        """Supply ``collateral`` and borrow ``debt`` (whole tokens, as decimal strings)."""
        pool = self.manifest.pool
        self.sender.send([self._mint(s, user, self.units(s, a)) for s, a in collateral.items()])
        actions = []
        for symbol, amount in collateral.items():
            asset = self.manifest.reserve(symbol).asset
            actions.append(Tx(user, asset, abi.APPROVE.encode(pool, MAX_UINT), "approve"))
            actions.append(
                Tx(
                    user,
                    pool,
                    abi.SUPPLY.encode(asset, self.units(symbol, amount), user, 0),
                    f"supply {symbol}",
                )
            )
        for symbol in disabled_collateral:
            asset = self.manifest.reserve(symbol).asset
            actions.append(
                Tx(user, pool, abi.SET_USE_AS_COLLATERAL.encode(asset, False), f"disable {symbol}")
            )
        if emode:
            actions.append(Tx(user, pool, abi.SET_USER_EMODE.encode(emode), f"eMode {emode}"))
        for symbol, amount in debt.items():
            mode = 1 if symbol in stable else 2
            asset = self.manifest.reserve(symbol).asset
            actions.append(
                Tx(
                    user,
                    pool,
                    abi.BORROW.encode(asset, self.units(symbol, amount), mode, 0, user),
                    f"borrow {symbol}",
                )
            )
        self.sender.send(actions)

    def set_price(self, feed: str, usd: str) -> None:
        """Set a MockPriceFeed's answer (8 decimals)."""
        address = self.manifest.feed(feed).address
        answer = int(Decimal(usd) * 10**8)
        self.sender.send(
            [Tx(self.admin, address, abi.UPDATE_ANSWER.encode(answer), f"price {feed}")]
        )

    def set_ratio(self, feed: str, ratio: str) -> None:
        """Set a RatioPriceAdapter's ratio (18 decimals)."""
        address = self.manifest.feed(feed).address
        self.sender.send(
            [Tx(self.admin, address, abi.SET_RATIO.encode(int(Decimal(ratio) * 10**18)), "ratio")]
        )

    def advance(self, seconds: int) -> None:
        """Move time forward and mine a block."""
        self.rpc.call("evm_increaseTime", [seconds])
        self.rpc.call("evm_mine")

    def _balance(self, token: str, owner: str, block: int) -> int:
        result = self.rpc.call(
            "eth_call", [{"to": token, "data": abi.BALANCE_OF.encode(owner)}, hex(block)]
        )
        return int(abi.BALANCE_OF.decode(result)[0])

    def liquidate(
        self,
        user: str,
        collateral: str,
        debt: str,
        debt_to_cover: int | None = None,
        *,
        receive_a_token: bool = False,
        liquidator: str | None = None,
    ) -> Outcome:
        """Predict, then execute ``liquidationCall`` alone in the next block and observe it.

        ``debt_to_cover`` None means: the largest the Pool accepts (``max_liquidation``).
        """
        liquidator = (liquidator or self.liquidator).lower()
        block = int(self.rpc.call("eth_blockNumber"), 16)
        latest = self.rpc.call("eth_getBlockByNumber", [hex(block), False])
        timestamp = int(latest["timestamp"], 16) + 12
        state = self.reader.read_market(block)
        account = self.reader.read_users([user], block, state)[0]
        c_asset, d_asset = (
            self.manifest.reserve(collateral).asset.lower(),
            self.manifest.reserve(debt).asset.lower(),
        )
        if debt_to_cover is None:
            prediction = max_liquidation(
                state.market, account, c_asset, d_asset, now=timestamp, liquidator=liquidator
            )
        else:
            prediction = simulate_liquidation(
                state.market,
                account,
                c_asset,
                d_asset,
                debt_to_cover,
                now=timestamp,
                liquidator=liquidator,
            )
        amount = (
            prediction.debt_to_cover
            if isinstance(prediction, Liquidation)
            else (debt_to_cover or MAX_UINT)
        )
        data = abi.LIQUIDATION_CALL.encode(c_asset, d_asset, user, amount, receive_a_token)
        self.rpc.call("evm_setNextBlockTimestamp", [timestamp])
        receipt = self.sender.send(
            [Tx(liquidator, self.manifest.pool, data, "liquidationCall")], allow_failures=True
        )[0]
        if int(str(receipt["status"]), 16) != 1:
            return Outcome(
                prediction, False, revert_reason=self._revert_reason(liquidator, data, block)
            )
        return self._observe(
            prediction, receipt, user, collateral, debt, liquidator, block, receive_a_token
        )

    def _revert_reason(self, sender: str, data: str, block: int) -> str:
        try:
            self.rpc.call(
                "eth_call",
                [
                    {"from": sender, "to": self.manifest.pool, "data": data, "gas": hex(5_000_000)},
                    hex(block),
                ],
            )
        except RpcError as error:
            return decode_revert(error.data)
        return "no revert when replayed"

    def _observe(
        self,
        prediction: LiquidationResult,
        receipt: dict[str, object],
        user: str,
        collateral: str,
        debt: str,
        liquidator: str,
        block: int,
        receive_a_token: bool,
    ) -> Outcome:
        logs = receipt["logs"]
        assert isinstance(logs, list)
        a_token = self.manifest.reserve(collateral).a_token.lower()
        c_asset = self.manifest.reserve(collateral).asset.lower()
        event = next(log for log in logs if log["topics"][0] == LIQUIDATION_CALL_TOPIC)
        repaid, taken, _liquidator, _receive = decode(
            ["uint256", "uint256", "address", "bool"], bytes.fromhex(event["data"][2:])
        )
        fee = sum(
            int(log["data"], 16)
            for log in logs
            if log["address"].lower() == a_token
            and log["topics"][0] == TRANSFER
            and _topic_address(log["topics"][1]) == user.lower()
            and _topic_address(log["topics"][2]) == self.treasury
        )
        cleared = any(
            log["topics"][0] == COLLATERAL_DISABLED
            and _topic_address(log["topics"][1]) == c_asset
            and _topic_address(log["topics"][2]) == user.lower()
            for log in logs
        )
        d_asset = self.manifest.reserve(debt).asset
        received_token = a_token if receive_a_token else c_asset
        spent = self._balance(d_asset, liquidator, block) - self._balance(
            d_asset, liquidator, block + 1
        )
        received = self._balance(received_token, liquidator, block + 1) - self._balance(
            received_token, liquidator, block
        )
        return Outcome(prediction, True, repaid, taken, fee, cleared, None, spent, received)


def decode_revert(data: object) -> str:
    """The error name of revert data: an Aave 3.6 custom error or a 3.0.2 error code."""
    if not isinstance(data, str) or len(data) < 10:
        return f"undecodable revert {data!r}"
    selector = data[:10]
    if selector == "0x08c379a0":  # Error(string)
        (message,) = decode(["string"], bytes.fromhex(data[10:]))
        return ERROR_CODES_V302.get(str(message), str(message))
    for name in (
        *ERROR_CODES_V302.values(),
        "MustNotLeaveDust",
        "SelfLiquidation",
        "LiquidationGraceSentinelCheckFailed",
    ):
        if event_topic(f"{name}()")[:10] == selector:
            return name
    return f"unknown error {selector}"


def assert_matches(outcome: Outcome) -> Liquidation:
    """The chain did exactly what the prediction said; returns the prediction."""
    prediction = outcome.prediction
    assert isinstance(prediction, Liquidation), f"predicted a rejection: {prediction}"
    assert outcome.succeeded, (
        f"predicted a liquidation, chain reverted with {outcome.revert_reason}"
    )
    assert outcome.debt_repaid == prediction.debt_repaid
    assert outcome.collateral_to_liquidator == prediction.collateral_to_liquidator
    assert outcome.protocol_fee == prediction.protocol_fee
    assert outcome.collateral_flag_cleared == prediction.collateral_flag_cleared
    assert outcome.liquidator_debt_spent == prediction.debt_repaid
    return prediction


def assert_rejected(outcome: Outcome, reason: str) -> None:
    """Both the prediction and the chain reject the liquidation with ``reason``."""
    prediction = outcome.prediction
    assert isinstance(prediction, LiquidationRejected), f"predicted {prediction}"
    assert prediction.reason.value == reason
    assert not outcome.succeeded
    assert outcome.revert_reason == reason
