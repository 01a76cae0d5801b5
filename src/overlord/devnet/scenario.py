"""Drive a seeded devnet through a random but reproducible market history.

:func:`run_scenario` takes ``steps`` steps, each chosen by weighted random from a
``random.Random(seed)``: price random walks and crashes on our settable feeds, wstETH
ratio changes, time jumps, actions of random seeded users (supply, withdraw, borrow, repay,
collateral on/off, eMode switch, aToken transfer) and liquidation sweeps by the liquidator.
A crash is always followed by a liquidation sweep (bots react at once) and sometimes by a
partial recovery, so crashes do push users below health factor 1 and get them liquidated.

Amounts are chosen from the chain's current state so that actions are likely valid; user
and liquidation transactions may still revert, which is recorded (``succeeded=False``),
never raised. Every step mines at least one block.

Determinism: from the same chain state, the same seed gives the same steps, transactions
and resulting state. Block times are pinned for the run (each block 12 s after the previous
one, time jumps mine at an explicit timestamp), because anvil otherwise stamps blocks with
the wall clock and interest would depend on how fast the run went.

This module holds the run itself (step selection, the price, ratio and time steps, the
pinned clock) and the users files (:func:`read_users_file`, :func:`discover_users`). The
user actions and the reading of users' positions are in :mod:`overlord.devnet.actions`, the
liquidation sweep in :mod:`overlord.devnet.liquidations`; their public names (``StepKind``,
``UserState``, ``read_user_states``, ``safe_removal``, ``USER_ACTIONS``, ...) are importable
from here too. All modules draw from the driver's one ``random.Random`` in a fixed order.
"""

from __future__ import annotations

import json
import random
import re
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from overlord.chain import aave_abi
from overlord.chain.abi import Function, event_topic
from overlord.chain.rpc import JsonRpcClient
from overlord.devnet.actions import (
    USER_ACTIONS,
    Outcome,
    Position,
    StepKind,
    UserAction,
    UserState,
    act,
    log_uniform,
    read_user_states,
    reserve_ids,
    safe_removal,
)
from overlord.devnet.liquidations import WAD, liquidation_sweep
from overlord.devnet.manifest import FeedInfo, Manifest
from overlord.devnet.seed import USD, MarketView, eth_calls, read_prices, token_unit
from overlord.devnet.transactions import Tx, TxSender

__all__ = [
    "BLOCK_INTERVAL",
    "DEFAULT_MAX_LIQUIDATIONS",
    "LOG_BLOCK_RANGE",
    "MAX_TIME_JUMP",
    "RATIO",
    "STEP_WEIGHTS",
    "SUPPLY_TOPIC",
    "USER_ACTIONS",
    "WAD",
    "Position",
    "StepKind",
    "StepRecord",
    "UserAction",
    "UserState",
    "discover_users",
    "parse_users",
    "pinned_block_times",
    "read_user_states",
    "read_users_file",
    "reserve_ids",
    "run_scenario",
    "safe_removal",
]

BLOCK_INTERVAL = 12  # seconds between blocks during a run, like mainnet
MAX_TIME_JUMP = 365 * 86_400
DEFAULT_MAX_LIQUIDATIONS = 200
RATIO = Function("ratio()", ("uint256",))
SUPPLY_TOPIC = event_topic("Supply(address,address,address,uint256,uint16)")
LOG_BLOCK_RANGE = 10_000
_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")


STEP_WEIGHTS: dict[StepKind, int] = {
    StepKind.PRICE_WALK: 20,
    StepKind.PRICE_CRASH: 7,
    StepKind.RATIO_CHANGE: 5,
    StepKind.TIME_JUMP: 8,
    StepKind.SUPPLY: 8,
    StepKind.WITHDRAW: 6,
    StepKind.BORROW: 9,
    StepKind.REPAY: 6,
    StepKind.COLLATERAL: 4,
    StepKind.EMODE: 3,
    StepKind.TRANSFER: 4,
    StepKind.LIQUIDATION: 12,
}
"""Relative frequency of each randomly chosen step (recoveries only follow crashes)."""


@dataclass(frozen=True)
class StepRecord:
    """One step of a scenario run.

    ``block_number`` is the last block the step mined (its effects are in it or before
    it); ``tx_hashes`` are every transaction the step sent, funding mints included;
    ``succeeded`` is whether all of them succeeded; ``liquidations`` counts successful
    ``liquidationCall`` s.
    """

    index: int
    kind: StepKind
    description: str
    block_number: int
    tx_hashes: tuple[str, ...]
    succeeded: bool
    liquidations: int = 0


def run_scenario(
    client: JsonRpcClient,
    manifest: Manifest,
    users: Sequence[str],
    *,
    steps: int,
    seed: int,
    on_step: Callable[[StepRecord], None] | None = None,
    max_liquidations: int = DEFAULT_MAX_LIQUIDATIONS,
) -> list[StepRecord]:
    """Run ``steps`` random steps against an anvil devnet; return their records.

    ``users`` are the addresses actions pick from and liquidation sweeps scan. A sweep
    liquidates at most ``max_liquidations`` users (lowest health factor first); the rest
    wait for the next sweep. ``on_step`` is called after each step. Raises ``ValueError``
    without users, and :class:`~overlord.chain.rpc.RpcError` if the node fails (a revert
    is not an error).
    """
    if not users:
        raise ValueError("a scenario needs at least one user")
    driver = _Driver(client, manifest, [u.lower() for u in users], seed, max_liquidations)
    records: list[StepRecord] = []
    with pinned_block_times(client):
        for index in range(steps):
            record = driver.step(index)
            records.append(record)
            if on_step is not None:
                on_step(record)
    return records


@contextmanager
def pinned_block_times(client: JsonRpcClient) -> Iterator[None]:
    """Stamp every block :data:`BLOCK_INTERVAL` seconds after the previous one.

    On exit the clock resumes from the last block's time (not from the wall clock, which
    could be far from the chain's time and would accrue that much interest at once).
    """
    # Start from the head's time: a chain loaded from a state file would otherwise stamp
    # its next block with the wall clock.
    client.call("evm_setTime", [_head_timestamp(client)])
    client.call("anvil_setBlockTimestampInterval", [BLOCK_INTERVAL])
    try:
        yield
    finally:
        client.call("anvil_removeBlockTimestampInterval")
        client.call("evm_setTime", [_head_timestamp(client)])


def _head_timestamp(client: JsonRpcClient) -> int:
    return int(client.call("eth_getBlockByNumber", ["latest", False])["timestamp"], 16)


def _duration(seconds: int) -> str:
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, seconds = divmod(rest, 60)
    parts = [(days, "d"), (hours, "h"), (minutes, "min"), (seconds, "s")]
    shown = [f"{value} {unit}" for value, unit in parts if value][:2]
    return " ".join(shown) or "0 s"


def _usd(base: int) -> str:
    return f"${base / USD:,.2f}"


class _Driver:
    """Chooses and executes the steps of one run."""

    def __init__(
        self,
        client: JsonRpcClient,
        manifest: Manifest,
        users: list[str],
        seed: int,
        max_liquidations: int,
    ) -> None:
        self.client = client
        self.manifest = manifest
        self.users = users
        self.rng = random.Random(seed)  # noqa: S311 - a reproducible simulation
        self.max_liquidations = max_liquidations
        self.sender = TxSender(client)
        self.admin = manifest.accounts["admin"]
        self.liquidator = manifest.accounts["liquidator"].lower()
        self.pending: deque[StepKind] = deque()
        self.recoveries: deque[tuple[FeedInfo, int]] = deque()
        self.reserve_ids = reserve_ids(client, manifest)
        self.handlers: dict[StepKind, Callable[[], Outcome]] = {
            StepKind.PRICE_WALK: self.price_walk,
            StepKind.PRICE_CRASH: self.price_crash,
            StepKind.PRICE_RECOVERY: self.price_recovery,
            StepKind.RATIO_CHANGE: self.ratio_change,
            StepKind.TIME_JUMP: self.time_jump,
            StepKind.LIQUIDATION: partial(liquidation_sweep, self),
        }
        for kind in USER_ACTIONS:
            self.handlers[kind] = self._user_step(kind)

    # Running steps.

    def step(self, index: int) -> StepRecord:
        """Choose and run step ``index``."""
        if self.pending:
            kind = self.pending.popleft()
        else:
            kinds = list(STEP_WEIGHTS)
            kind = self.rng.choices(kinds, weights=[STEP_WEIGHTS[k] for k in kinds])[0]
        outcome = self.handlers[kind]()
        block = int(self.client.call("eth_blockNumber"), 16)
        return StepRecord(
            index=index,
            kind=outcome.kind,
            description=outcome.description,
            block_number=block,
            tx_hashes=tuple(str(r["transactionHash"]) for r in outcome.receipts),
            succeeded=outcome.succeeded,
            liquidations=outcome.liquidations,
        )

    def send(self, outcome: Outcome, txs: Sequence[Tx]) -> list[dict[str, object]]:
        """Send ``txs`` (reverts allowed) and add their receipts to ``outcome``."""
        receipts = self.sender.send(txs, allow_failures=True)
        outcome.receipts += receipts
        return receipts

    def market(self) -> MarketView:
        """The manifest with the current oracle prices."""
        return MarketView(self.manifest, read_prices(self.client, self.manifest))

    # Prices and time.

    def _chainlink_feeds(self) -> list[FeedInfo]:
        return [f for f in self.manifest.feeds if f.kind == "chainlink"]

    def _answer(self, feed: FeedInfo) -> int:
        (answer,) = aave_abi.LATEST_ANSWER.decode(
            eth_calls(self.client, [(feed.address, aave_abi.LATEST_ANSWER.encode())])[0]
        )
        return int(answer)

    def _set_answer(self, outcome: Outcome, feed: FeedInfo, answer: int) -> None:
        data = aave_abi.UPDATE_ANSWER.encode(max(answer, 1))
        self.send(outcome, [Tx(self.admin, feed.address, data, f"update {feed.name}")])

    def price_walk(self) -> Outcome:
        """Move a random feed by ±0.1-5 % (pegged feeds: a small step back towards $1)."""
        feed = self.rng.choice(self._chainlink_feeds())
        old = self._answer(feed)
        unit = token_unit(feed)
        sign = self.rng.choice((-1, 1))
        if 0.9 * unit <= old <= 1.1 * unit:
            # A stablecoin does not random-walk 5 %: it wobbles around its peg.
            new = old + (unit - old) // 2 + sign * int(old * self.rng.uniform(0.0005, 0.005))
        else:
            new = old + sign * int(old * self.rng.uniform(0.001, 0.05))
        outcome = Outcome(StepKind.PRICE_WALK, "")
        self._set_answer(outcome, feed, new)
        outcome.description = f"{feed.name} moves {(new - old) / old:+.2%} to {_usd(new)}"
        return outcome

    def _crash_feed(self) -> FeedInfo:
        feeds = [f for f in self._chainlink_feeds() if f.name.split(" ")[0] in ("ETH", "BTC")]
        return self.rng.choice(feeds or self._chainlink_feeds())

    def price_crash(self) -> Outcome:
        """Drop ETH or BTC by 15-40 %; queue a liquidation sweep and maybe a recovery."""
        feed = self._crash_feed()
        old = self._answer(feed)
        drop = self.rng.uniform(0.15, 0.40)
        new = old - int(old * drop)
        outcome = Outcome(StepKind.PRICE_CRASH, "")
        self._set_answer(outcome, feed, new)
        self.pending.append(StepKind.LIQUIDATION)
        recovery = self.rng.random() < 0.4
        if recovery:
            self.recoveries.append((feed, old))
            self.pending.append(StepKind.PRICE_RECOVERY)
        outcome.description = f"{feed.name} crashes {-drop:.1%} to {_usd(new)}" + (
            " (a recovery will follow)" if recovery else ""
        )
        return outcome

    def price_recovery(self) -> Outcome:
        """Win back 30-90 % of the last crash's loss."""
        feed, target = self.recoveries.popleft()
        old = self._answer(feed)
        new = old + int((target - old) * self.rng.uniform(0.3, 0.9))
        outcome = Outcome(StepKind.PRICE_RECOVERY, "")
        self._set_answer(outcome, feed, new)
        outcome.description = f"{feed.name} recovers {(new - old) / old:+.1%} to {_usd(new)}"
        return outcome

    def ratio_change(self) -> Outcome:
        """Move a ratio adapter (wstETH/ETH): mostly a small accrual, sometimes a drop."""
        adapters = [f for f in self.manifest.feeds if f.kind == "ratio"]
        if not adapters:
            return self.price_walk()
        adapter = self.rng.choice(adapters)
        (old,) = RATIO.decode(eth_calls(self.client, [(adapter.address, RATIO.encode())])[0])
        if self.rng.random() < 0.85:
            change = self.rng.uniform(0.0001, 0.01)
        else:
            change = -self.rng.uniform(0.005, 0.05)  # a slashing or depeg event
        new = int(old) + int(int(old) * change)
        outcome = Outcome(StepKind.RATIO_CHANGE, "")
        data = aave_abi.SET_RATIO.encode(new)
        self.send(outcome, [Tx(self.admin, adapter.address, data, f"ratio {adapter.name}")])
        outcome.description = f"{adapter.name} ratio moves {change:+.2%} to {new / WAD:.6f}"
        return outcome

    def time_jump(self) -> Outcome:
        """Mine a block 1 s to 365 days (log-uniform) after the head."""
        delta = int(log_uniform(self.rng, 1, MAX_TIME_JUMP))
        # anvil ignores evm_increaseTime while block times are pinned; an explicit
        # timestamp on evm_mine has the same effect.
        self.client.call("evm_mine", [_head_timestamp(self.client) + delta])
        return Outcome(StepKind.TIME_JUMP, f"time jumps {_duration(delta)} ({delta:,} s)")

    # User actions and liquidations.

    def _user_step(self, kind: StepKind) -> Callable[[], Outcome]:
        def run() -> Outcome:
            user = self.rng.choice(self.users)
            (state,) = read_user_states(self.client, self.manifest, [user], self.reserve_ids)
            return act(self, kind, state, self.market())

        return run


# Users of a running devnet.


def parse_users(text: str) -> tuple[str, ...]:
    """Addresses from a JSON list (``users.json``) or one address per line.

    Blank lines and ``#`` comments are ignored; addresses come back lower-case, in order,
    without duplicates. Raises ``ValueError`` naming the first bad entry.
    """
    stripped = text.strip()
    if stripped.startswith("["):
        entries = json.loads(stripped)
        if not isinstance(entries, list):
            raise ValueError("expected a JSON list of addresses")
    else:
        entries = [line.split("#", 1)[0].strip() for line in stripped.splitlines()]
        entries = [entry for entry in entries if entry]
    users: dict[str, None] = {}
    for number, entry in enumerate(entries, start=1):
        if not isinstance(entry, str) or not _ADDRESS.match(entry):
            raise ValueError(f"entry {number} is not an address: {str(entry)[:60]!r}")
        users[entry.lower()] = None
    return tuple(users)


def read_users_file(path: Path) -> tuple[str, ...]:
    """:func:`parse_users` of a file; ``ValueError`` names the file on any problem."""
    try:
        return parse_users(path.read_text())
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


def discover_users(client: JsonRpcClient, manifest: Manifest) -> tuple[str, ...]:
    """Every ``onBehalfOf`` of a Pool ``Supply`` event since the deployment, in order of
    first supply, without the manifest's own accounts (admin, liquidity provider, ...)."""
    head = int(client.call("eth_blockNumber"), 16)
    skip = {address.lower() for address in manifest.accounts.values()}
    users: dict[str, None] = {}
    for start in range(manifest.deployment_block, head + 1, LOG_BLOCK_RANGE):
        end = min(start + LOG_BLOCK_RANGE - 1, head)
        query = {
            "address": manifest.pool,
            "topics": [SUPPLY_TOPIC],
            "fromBlock": hex(start),
            "toBlock": hex(end),
        }
        for log in client.call("eth_getLogs", [query]):
            user = "0x" + str(log["topics"][2])[-40:].lower()
            if user not in skip:
                users[user] = None
    return tuple(users)
