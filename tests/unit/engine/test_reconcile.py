"""The reconciler against a scripted chain: the real reader and client over a fake node
that answers each user's configuration, eMode and token balances from a dict."""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import replace
from types import MappingProxyType

import pytest

from overlord.aave import ProtocolVersion, StableDebt, UserAccount, UserReserve
from overlord.aave.configuration import user_configuration_word
from overlord.chain import aave_abi as abi
from overlord.chain.reader import MarketState, ReserveTokens
from overlord.chain.rpc import JsonRpcClient
from overlord.engine.engine import Engine
from overlord.engine.reconcile import (
    FieldDifference,
    Mismatch,
    Reconciler,
    account_differences,
)
from tests.unit.aave.builders import asset, make_market, make_reserve
from tests.unit.chain.fakes import REVERT, Answer, FakeNode, client_for, result

POOL = "0x" + "11" * 20
ORACLE = "0x" + "33" * 20
BLOCK = 100
NOW = 1_700_000_000
GAP = 5  # a reserve id with no reserve (a dropped reserve's gap)


def token(kind: str, reserve_id: int) -> str:
    return f"0x{kind}{reserve_id:038x}"


def market_state() -> MarketState:
    market = make_market(
        ProtocolVersion.V3_0_2, [make_reserve(0), make_reserve(1)], {0: 10**8, 1: 10**8}
    )
    tokens = {
        rid: ReserveTokens(asset(rid), token("a1", rid), token("b1", rid), token("c1", rid), "", 18)
        for rid in (0, 1)
    }
    return MarketState(market, BLOCK, NOW, MappingProxyType(tokens), POOL, ORACLE)


def user(n: int) -> str:
    return f"0x{n:040x}"


def account(
    address: str,
    *,
    collateral: dict[int, int] | None = None,
    debt: dict[int, int] | None = None,
    stable: dict[int, StableDebt] | None = None,
    emode: int = 0,
) -> UserAccount:
    collateral, debt, stable = collateral or {}, debt or {}, stable or {}
    positions = {
        rid: UserReserve(collateral.get(rid, 0), debt.get(rid, 0), stable.get(rid))
        for rid in collateral.keys() | debt.keys()
    }
    return UserAccount(
        address,
        user_configuration_word(borrowing=debt, collateral=collateral),
        emode,
        MappingProxyType(positions),
    )


class FakeChain:
    """The Pool and tokens of ``market_state()``, answering from ``accounts``; a user in
    ``broken`` makes ``getUserConfiguration`` revert."""

    def __init__(self) -> None:
        self.accounts: dict[str, UserAccount] = {}
        self.broken: set[str] = set()
        self.node = FakeNode(block_number=BLOCK, timestamp=NOW)
        self.node.on(POOL, abi.GET_USER_CONFIGURATION, self._configuration)
        self.node.on(POOL, abi.GET_USER_EMODE, lambda d: self._uint(self._of(d).emode_category))
        for rid in (0, 1):
            self._tokens(rid)

    def _tokens(self, rid: int) -> None:
        def stable(d: str) -> StableDebt:
            return self._of(d).position(rid).stable_debt or StableDebt(0, 0, 0)

        on = self.node.on
        on(token("a1", rid), abi.SCALED_BALANCE_OF, lambda d: self._uint(self._pos(d, rid)[0]))
        on(token("b1", rid), abi.SCALED_BALANCE_OF, lambda d: self._uint(self._pos(d, rid)[1]))
        on(token("c1", rid), abi.PRINCIPAL_BALANCE_OF, lambda d: self._uint(stable(d).principal))
        on(token("c1", rid), abi.GET_USER_STABLE_RATE, lambda d: self._uint(stable(d).rate))
        on(
            token("c1", rid),
            abi.GET_USER_LAST_UPDATED,
            lambda d: self._uint(stable(d).last_update_timestamp),
        )

    def _of(self, calldata: str) -> UserAccount:
        address = "0x" + calldata[-40:]
        return self.accounts.get(address, UserAccount(address, 0))

    def _pos(self, calldata: str, rid: int) -> tuple[int, int]:
        position = self._of(calldata).position(rid)
        return position.scaled_atoken_balance, position.scaled_variable_debt

    def _configuration(self, calldata: str) -> Answer:
        if "0x" + calldata[-40:] in self.broken:
            return REVERT
        return self._uint(self._of(calldata).configuration)

    @staticmethod
    def _uint(value: int) -> Answer:
        return result(("uint256",), value)

    def client(self) -> JsonRpcClient:
        return client_for(self.node)


class RecordingEngine(Engine):
    """An engine that also records what it was asked to read again."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.reread_requests: list[list[str]] = []

    def reread_next(self, addresses: Iterable[str]) -> None:
        listed = list(addresses)
        self.reread_requests.append(listed)
        super().reread_next(listed)


class World:
    """An engine settled at ``BLOCK`` whose table and the fake chain hold the same users."""

    def __init__(self, people: list[UserAccount]) -> None:
        self.chain = FakeChain()
        self.clients: list[JsonRpcClient] = [self.chain.client()]
        self.engine = RecordingEngine(self.clients[0], POOL)
        self.engine.state, self.engine.last_block = market_state(), BLOCK
        for person in people:
            self.chain.accounts[person.address] = person
            self.engine.table.upsert(person)
        self.found: list[Mismatch] = []
        self.reconcilers: list[Reconciler] = []

    def client(self) -> JsonRpcClient:
        client = self.chain.client()
        self.clients.append(client)
        return client

    def reconciler(
        self, *, chunk: int = 500, dropped: Callable[[], Collection[str]] | None = None
    ) -> Reconciler:
        reconciler = Reconciler(
            self.engine,
            self.client,
            interval_s=60.0,
            chunk=chunk,
            on_mismatch=self.found.append,
            dropped=dropped,
        )
        self.reconcilers.append(reconciler)
        return reconciler

    def close(self) -> None:
        for reconciler in self.reconcilers:
            reconciler.close()
        for client in self.clients:
            client.close()


PEOPLE = [
    account(user(1), collateral={0: 5 * 10**18}),
    account(user(2), collateral={0: 10**18}, debt={1: 300 * 10**6}),  # chain: stable 0, 0, 0
    account(
        user(3),
        collateral={1: 7 * 10**18},
        debt={0: 10**17},
        stable={0: StableDebt(10**16, 5 * 10**25, NOW - 100)},
    ),
    account(user(4), collateral={0: 10**18, GAP: 0}),  # the gap: no position on chain
    account(user(5)),  # known, no positions
]


@pytest.fixture
def world() -> Iterator[World]:
    built = World(PEOPLE)
    yield built
    built.close()


def test_a_table_equal_to_the_chain_reports_no_mismatch(world: World) -> None:
    report = world.reconciler().reconcile_once()

    assert report.mismatches == []
    assert report.users_checked == len(PEOPLE)
    assert report.block == BLOCK
    assert (report.errors, report.skipped) == (0, 0)
    assert world.engine.reread_requests == []
    assert world.found == []


def test_a_tampered_scaled_balance_is_reported_read_again_and_handed_over(world: World) -> None:
    stored = PEOPLE[1]
    tampered = replace(
        stored, positions=MappingProxyType({**stored.positions, 0: UserReserve(10**18 - 1)})
    )
    world.engine.table.upsert(tampered)
    reconciler = world.reconciler()

    report = reconciler.reconcile_once()

    expected = Mismatch(
        user(2),
        BLOCK,
        (FieldDifference("reserve[0].scaled_atoken_balance", 10**18 - 1, 10**18),),
    )
    assert report.mismatches == [expected]
    assert world.found == [expected]
    assert world.engine.reread_requests == [[user(2)]]
    assert (reconciler.rounds, reconciler.mismatches, reconciler.users_checked) == (1, 1, 5)
    assert reconciler.last_report is report


def test_a_missing_collateral_flag_is_reported_by_reserve(world: World) -> None:
    stored = PEOPLE[2]
    world.engine.table.upsert(replace(stored, configuration=user_configuration_word(borrowing=[0])))

    report = world.reconciler().reconcile_once()

    (mismatch,) = report.mismatches
    assert mismatch.user == user(3)
    assert mismatch.differences == (FieldDifference("reserve[1].collateral", False, True),)
    assert world.engine.reread_requests == [[user(3)]]


def test_a_wrong_emode_category_is_reported(world: World) -> None:
    world.engine.table.upsert(replace(PEOPLE[0], emode_category=2))

    report = world.reconciler().reconcile_once()

    (mismatch,) = report.mismatches
    assert mismatch.differences == (FieldDifference("emode_category", 2, 0),)


def test_a_changed_stable_debt_is_reported_with_both_values(world: World) -> None:
    drifted = StableDebt(10**16 + 1, 5 * 10**25, NOW - 100)
    world.chain.accounts[user(3)] = account(
        user(3), collateral={1: 7 * 10**18}, debt={0: 10**17}, stable={0: drifted}
    )

    report = world.reconciler().reconcile_once()

    (mismatch,) = report.mismatches
    assert mismatch.differences == (
        FieldDifference("reserve[0].stable_debt", PEOPLE[2].position(0).stable_debt, drifted),
    )


def test_users_whose_read_fails_are_counted_not_reported_and_the_rest_are_checked(
    world: World,
) -> None:
    world.chain.broken = {user(2), user(4)}
    world.engine.table.upsert(replace(PEOPLE[4], emode_category=1))  # user 5 differs
    reconciler = world.reconciler(chunk=3)

    report = reconciler.reconcile_once()

    assert report.errors == 2
    assert report.users_checked == 3
    assert [m.user for m in report.mismatches] == [user(5)]
    assert reconciler.errors == 2
    assert world.engine.reread_requests == [[user(5)]]


def test_an_engine_without_a_settled_block_is_skipped(world: World) -> None:
    world.engine.last_block = BLOCK - 1  # rolled back: the state is of an orphaned block

    report = world.reconciler().reconcile_once()

    assert (report.users_checked, report.skipped, report.block) == (0, len(PEOPLE), None)
    assert world.chain.node.requests == []


def test_a_dropped_user_left_empty_is_not_read_back_in(world: World) -> None:
    world.engine.drop_users([user(1), user(2)])
    world.engine.table.upsert(replace(PEOPLE[1], emode_category=1))  # user 2 came back
    reconciler = world.reconciler(dropped=lambda: {user(1), user(2)})

    report = reconciler.reconcile_once()

    assert report.users_checked == len(PEOPLE) - 1
    assert [m.user for m in report.mismatches] == [user(2)]


def test_the_thread_outlives_a_failing_round(world: World) -> None:
    world.engine.table.upsert(replace(PEOPLE[0], emode_category=3))
    stop = threading.Event()
    failing = iter([True])

    def factory() -> JsonRpcClient:
        if next(failing, False):
            raise RuntimeError("no node yet")
        return world.client()

    reconciler = Reconciler(
        world.engine, factory, interval_s=0.001, on_mismatch=lambda _m: stop.set()
    )
    world.reconcilers.append(reconciler)

    thread = reconciler.start(stop)
    thread.join(timeout=30)
    stop.set()

    assert not thread.is_alive()
    assert thread.name == "reconcile"
    assert reconciler.failures == 1
    assert reconciler.mismatches >= 1


def test_what_the_math_ignores_is_not_a_difference() -> None:
    stored = account(user(9), collateral={0: 1, GAP: 0}, debt={1: 2})
    chain = replace(
        stored,
        positions=MappingProxyType(
            {
                0: UserReserve(1, 0, StableDebt(4, 5, 6)),  # stable debt without a borrow flag
                1: UserReserve(0, 2, StableDebt(0, 7, 8)),  # zero principal
            }
        ),
    )

    assert account_differences(stored, chain) == ()


def test_a_reserve_flagged_on_one_side_only_reports_the_flags_not_the_balances() -> None:
    stored = account(user(9), collateral={0: 1})
    chain = account(user(9), collateral={0: 1, 1: 10**18}, debt={1: 5})

    assert account_differences(stored, chain) == (
        FieldDifference("reserve[1].borrowing", False, True),
        FieldDifference("reserve[1].collateral", False, True),
    )
