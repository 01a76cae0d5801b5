"""Live ingestion on the devnet: WebSocket drops and reorgs leave the engine equal to the chain.

Each test runs the real pipeline (:class:`LiveIngest` over anvil's WebSocket, the block path
on its own thread) and checks the outcome with ``overlord verify``'s comparison: every
user's six ``getUserAccountData`` outputs, computed from the engine's table, equal the
chain's at the engine's block, and the engine's underwater set is the chain's.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress

import pytest

from overlord.chain import aave_abi
from overlord.chain.reader import MarketReader
from overlord.chain.rpc import JsonRpcClient
from overlord.chain.ws import ws_url_for
from overlord.devnet.anvil import free_port
from overlord.devnet.launch import Devnet
from overlord.devnet.scenario import run_scenario
from overlord.devnet.transactions import Tx, TxSender
from overlord.engine.engine import Engine, EngineSettings
from overlord.engine.follower import NodeChain
from overlord.engine.live import LiveIngest, LiveSettings
from overlord.engine.runner import Runner
from overlord.engine.scout import PriceScout
from overlord.feeds.sources import discover_feeds
from overlord.outputs.events import UnderwaterUserEvent
from overlord.verify import check_user

WAD = 10**18
MAX_UINT256 = 2**256 - 1


def wait_until(condition: Callable[[], bool], timeout: float = 30.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        time.sleep(0.02)


def assert_engine_equals_chain(engine: Engine, rpc: JsonRpcClient) -> None:
    """``overlord verify``'s comparison of the engine's state with the chain, every user."""
    state = engine.state
    assert state is not None
    assert engine.last_block == state.block_number
    users = list(engine.table.addresses)
    chain = MarketReader(rpc, engine.pool).read_account_data(users, state.block_number)
    for index, (user, expected) in enumerate(zip(users, chain, strict=True)):
        check = check_user(state, engine.table.account(index), expected)
        assert check.matches, (user, check.differing_fields, check.ours, check.chain)
    underwater = {u for u, data in zip(users, chain, strict=True) if data[5] < WAD}
    assert set(engine.underwater) == underwater


@contextmanager
def running_live(
    devnet: Devnet,
    ws_url: str,
    settings: LiveSettings | None = None,
    *,
    scout: bool = False,
    events: list[UnderwaterUserEvent] | None = None,
) -> Iterator[LiveIngest]:
    """A synced runner followed live on its own thread; stopped and checked on exit."""
    client, scout_client = devnet.client(), devnet.client()
    head = NodeChain(client).latest()
    engine = Engine(client, devnet.manifest.pool, EngineSettings(reannounce_interval=10**9))
    runner = Runner(
        engine, devnet.manifest.chain_id, on_event=None if events is None else events.append
    )
    runner.start(devnet.users, head.number, block_hash=head.block_hash)
    price_scout = None
    if scout:
        oracle = devnet.manifest.addresses["oracle"]
        assets = [r.asset for r in devnet.manifest.reserves]
        watched = discover_feeds(scout_client, oracle, assets, head.number)
        price_scout = PriceScout(engine, scout_client, oracle, watched)
    live = LiveIngest(
        runner,
        devnet.client,
        ws_url=ws_url,
        scout=price_scout,
        settings=settings or LiveSettings(),
    )
    stop = threading.Event()
    failure: list[BaseException] = []

    def follow() -> None:
        try:
            live.run(stop)
        except BaseException as exc:  # surfaced in the test thread
            failure.append(exc)

    thread = threading.Thread(target=follow, name="live", daemon=True)
    thread.start()
    try:
        yield live
    finally:
        stop.set()
        thread.join(timeout=10)
        client.close()
        scout_client.close()
    assert not failure, failure


def caught_up(live: LiveIngest, rpc: JsonRpcClient) -> Callable[[], bool]:
    """True once the live intake has *finished* processing the node's head: the engine's
    ``last_block`` moves before its underwater set does, so it cannot tell."""

    def check() -> bool:
        return live.stats.last_processed == int(rpc.call("eth_blockNumber"), 16)

    return check


@pytest.mark.parametrize("depth", [1, 3])
def test_a_reorg_leaves_the_engine_equal_to_the_canonical_chain(
    devnet: Devnet, rpc: JsonRpcClient, depth: int
) -> None:
    manifest = devnet.manifest
    pool, usdc = manifest.pool, manifest.reserve("USDC")
    admin = manifest.accounts["admin"]
    suppliers = devnet.users[:depth]
    amount = 5_000_000 * 10**6
    sender = TxSender(rpc)
    sender.send([Tx(admin, usdc.asset, aave_abi.MINT.encode(u, amount), "mint") for u in suppliers])
    sender.send(
        [
            Tx(u, usdc.asset, aave_abi.APPROVE.encode(pool, MAX_UINT256), "approve")
            for u in suppliers
        ]
    )
    with running_live(devnet, ws_url_for(devnet.rpc_url)) as live:
        engine = live.runner.engine
        # The blocks about to be orphaned: one big supply each, seen by the engine.
        for user in suppliers:
            sender.send([Tx(user, pool, aave_abi.SUPPLY.encode(usdc.asset, amount, user, 0), "s")])
        wait_until(caught_up(live, rpc), what="the supplies")
        orphaned_head = engine.last_block
        assert engine.state is not None
        usdc_id = engine.state.market.reserve_by_asset(usdc.asset.lower()).id
        assert engine.history[-1].reread >= {suppliers[-1]}
        crash = {
            "from": admin,
            "to": manifest.feed("ETH / USD").address,
            "data": aave_abi.UPDATE_ANSWER.encode(1_400 * 10**8),
            "gas": hex(300_000),
        }
        # The new chain: the same height, the crash instead of the supplies; then one more block.
        rpc.call("anvil_reorg", [depth, [[crash, 0]]])
        rpc.call("evm_mine")
        wait_until(lambda: live.stats.reorgs >= 1, what="the reorg")
        wait_until(caught_up(live, rpc), what="the new head")

        assert orphaned_head is not None
        assert engine.last_block == orphaned_head + 1
        assert live.stats.orphaned_blocks >= 1  # heads may be coalesced: one may cover several
        assert_engine_equals_chain(engine, rpc)
        assert engine.underwater  # the crash sank users, and none of the supplies remain
        for user in suppliers:
            account = engine.table.account(engine.table.user_index(user) or 0)
            assert account.position(usdc_id).scaled_atoken_balance < amount // 2


def test_a_rollback_to_a_shorter_chain_is_followed(devnet: Devnet, rpc: JsonRpcClient) -> None:
    manifest = devnet.manifest
    feed, admin = manifest.feed("ETH / USD").address, manifest.accounts["admin"]
    sender = TxSender(rpc)
    with running_live(devnet, ws_url_for(devnet.rpc_url)) as live:
        for answer in (1_500, 1_450, 1_400):
            sender.send([Tx(admin, feed, aave_abi.UPDATE_ANSWER.encode(answer * 10**8), "crash")])
        wait_until(caught_up(live, rpc), what="the crashes")
        sunk = set(live.runner.engine.underwater)
        assert sunk
        rpc.call("anvil_rollback", [3])  # the crashes never happened
        rpc.call("evm_mine")
        wait_until(lambda: live.stats.reorgs >= 1, what="the rollback")
        wait_until(caught_up(live, rpc), what="the new head")

        assert_engine_equals_chain(live.runner.engine, rpc)
        assert set(live.runner.engine.underwater) != sunk


class SeverableProxy:
    """A TCP relay to the node that the test can cut: every connection closed at once, and
    new ones refused while it is down (a real network drop, seen by the client's socket)."""

    def __init__(self, target_port: int) -> None:
        self.target = ("127.0.0.1", target_port)
        self.port = free_port()
        self.up = threading.Event()
        self.up.set()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._listener.settimeout(0.1)
        self._closed = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if not self.up.is_set():
                client.close()
                continue
            upstream = socket.create_connection(self.target)
            with self._lock:
                self._sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        self.up.clear()
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def restore(self) -> None:
        self.up.set()

    def close(self) -> None:
        self._closed.set()
        self.cut()
        self._listener.close()


def test_a_dropped_websocket_misses_no_block(devnet: Devnet, rpc: JsonRpcClient) -> None:
    port = int(devnet.rpc_url.rsplit(":", 1)[1].split("/")[0])
    proxy = SeverableProxy(port)
    # No idle check during the test: catching up must come from the reconnection itself.
    settings = LiveSettings(idle_check=600)
    try:
        with running_live(devnet, f"ws://127.0.0.1:{proxy.port}", settings) as live:
            engine = live.runner.engine
            processed: list[int] = []

            def step(record: object) -> None:
                processed.append(engine.last_block or 0)
                if len(processed) == 5:
                    proxy.cut()  # mid-scenario; the rest of it happens while it is down

            run_scenario(rpc, devnet.manifest, devnet.users, steps=20, seed=31, on_step=step)
            behind = engine.last_block
            assert behind is not None
            assert behind < int(rpc.call("eth_blockNumber"), 16)
            # No block comes after the reconnection: catching up is the reconnection's doing.
            proxy.restore()
            wait_until(caught_up(live, rpc), what="the catch-up after the drop")

            assert live.stats.reconnects >= 1
            assert_engine_equals_chain(engine, rpc)
    finally:
        proxy.close()


def test_a_pending_update_pushed_by_the_websocket_is_announced_before_its_block(
    devnet: Devnet, rpc: JsonRpcClient
) -> None:
    manifest = devnet.manifest
    events: list[UnderwaterUserEvent] = []
    with running_live(devnet, ws_url_for(devnet.rpc_url), scout=True, events=events) as live:
        engine = live.runner.engine
        wait_until(lambda: live.subscribed_kinds() != (), what="the subscriptions")
        assert "newPendingTransactions" in live.subscribed_kinds()
        before, number = set(engine.underwater), engine.last_block
        assert number is not None
        rpc.call("anvil_autoImpersonateAccount", [True])
        rpc.call("evm_setAutomine", [False])
        try:
            tx_hash = rpc.call(
                "eth_sendTransaction",
                [
                    {
                        "from": manifest.accounts["admin"],
                        "to": manifest.feed("ETH / USD").address,
                        "data": aave_abi.UPDATE_ANSWER.encode(2_000 * 10**8),
                        "gas": hex(200_000),
                        "gasPrice": "0x0",
                    }
                ],
            )
            wait_until(lambda: any(e.tx_hash == tx_hash for e in events), what="pending events")
            still_pending = int(rpc.call("eth_blockNumber"), 16) == number
            timestamp = int(rpc.call("eth_getBlockByNumber", ["latest", False])["timestamp"], 16)
            rpc.call("evm_setNextBlockTimestamp", [timestamp + 12])
            rpc.call("evm_mine")
        finally:
            rpc.call("evm_setAutomine", [True])
        wait_until(caught_up(live, rpc), what="the mined block")
        scout = live.scout
        assert scout is not None
        wait_until(lambda: scout.checked == 1, what="the prediction check")

    assert still_pending
    pending = [e for e in events if e.tx_hash == tx_hash]
    chain = dict(
        zip(
            engine.table.addresses,
            MarketReader(rpc, manifest.pool).read_account_data(engine.table.addresses, number + 1),
            strict=True,
        )
    )
    sunk = {u for u, data in chain.items() if data[5] < WAD} - before
    assert sunk
    assert {e.address.lower() for e in pending} == sunk
    for event in pending:
        assert event.user_account_data.as_tuple() == tuple(chain[event.address.lower()])
    assert scout.mismatches == 0
