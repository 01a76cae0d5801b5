"""The verifier's judgement with a scripted chain: a disagreement is asked again once, and
only one that persists is a mismatch."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from overlord.aave import ProtocolVersion, calculate_user_account_data
from overlord.chain.reader import MarketState
from overlord.engine.verifier import POOL_REVERTED_TOO, HealthFactorVerifier
from overlord.observability.metrics import Metrics
from overlord.verify import AccountTuple
from tests.unit.aave.builders import make_market, make_reserve, make_user
from tests.unit.chain.fakes import FakeNode, client_for

RAY = 10**27
POOL = "0x" + "aa" * 20


class ScriptedReader:
    """Answers each ``read_account_data_or_revert`` with the next scripted answer."""

    def __init__(self, answers: list[list[AccountTuple | None]]) -> None:
        self.answers = answers
        self.asked: list[Sequence[str]] = []

    def read_account_data_or_revert(
        self, users: Sequence[str], _block: int
    ) -> list[AccountTuple | None]:
        self.asked.append(list(users))
        return self.answers.pop(0)


def _state() -> MarketState:
    market = make_market(
        ProtocolVersion.V3_6,
        [make_reserve(0, liquidity_index=RAY, variable_borrow_index=RAY), make_reserve(1)],
        {0: 2_000 * 10**8, 1: 10**8},
    )
    return MarketState(market, 100, 1_700_000_000, {}, POOL, "0x" + "bb" * 20)


def _verifier(answers: list[list[AccountTuple | None]]) -> tuple[HealthFactorVerifier, Metrics]:
    metrics = Metrics()
    with client_for(FakeNode()) as client:  # never asked: the scripted reader answers
        verifier = HealthFactorVerifier(client, POOL, metrics=metrics, revert_retry_s=0.0)
    verifier.reader = ScriptedReader(answers)  # type: ignore[assignment]
    return verifier, metrics


def test_a_transient_disagreement_is_asked_again_and_not_a_mismatch() -> None:
    state = _state()
    user = make_user(collateral={0: 10**18}, debt={1: 500 * 10**6})
    truth = calculate_user_account_data(state.market, user, state.block_timestamp).as_tuple()
    off_by_one = (truth[0] + 1, *truth[1:])
    verifier, _ = _verifier([[off_by_one], [truth]])

    (check,) = verifier.check(state, [user])

    assert check.matches
    assert verifier.mismatches == 0
    assert len(verifier.reader.asked) == 2  # type: ignore[attr-defined]


@pytest.mark.parametrize("persisting", ["wrong tuple", "revert"])
def test_a_persisting_disagreement_is_a_mismatch(persisting: str) -> None:
    state = _state()
    user = make_user(collateral={0: 10**18}, debt={1: 500 * 10**6})
    truth = calculate_user_account_data(state.market, user, state.block_timestamp).as_tuple()
    answer: AccountTuple | None = None if persisting == "revert" else (truth[0] + 1, *truth[1:])
    verifier, metrics = _verifier([[answer], [answer]])

    (check,) = verifier.check(state, [user])

    assert not check.matches
    assert verifier.mismatches == 1
    assert "verifier_mismatches_total 1.0" in metrics.exposition().decode()


def test_a_user_the_pool_and_our_math_both_refuse_is_consistent() -> None:
    user = make_user(collateral={0: 10**18}, debt={1: 500 * 10**6})
    broken = MarketState(
        make_market(ProtocolVersion.V3_6, [make_reserve(0), make_reserve(1)], {0: 2_000 * 10**8}),
        100,
        1_700_000_000,
        {},
        POOL,
        "0x" + "bb" * 20,
    )  # no price for the debt asset: our math refuses, as the Pool would revert
    verifier, _ = _verifier([[None]])

    (check,) = verifier.check(broken, [user])

    assert check.error == POOL_REVERTED_TOO
    assert verifier.mismatches == 0
    assert verifier.checks == 1
