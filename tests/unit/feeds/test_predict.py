"""Price prediction: eth_simulateV1, the debug_traceCall + eth_call override fallback, failures."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import pytest
from eth_abi.abi import encode

from overlord.chain.rpc import RpcError, RpcTransportError
from overlord.feeds.predict import (
    Method,
    PredictionUnavailable,
    PricePredictor,
    predict_prices,
    storage_override,
)

ORACLE = "0x" + "0c" * 20
FEED = "0x" + "f1" * 20
SENDER = "0x" + "5e" * 20
ASSETS = ["0x" + "A1" * 20, "0x" + "a2" * 20]
TX = {"from": SENDER, "to": FEED, "input": "0xa87a20ce", "gas": "0x30d40", "nonce": "0x7"}
BLOCK = "0x55"


def word(value: int) -> str:
    return f"0x{value:064x}"


def prices_data(*prices: int) -> str:
    return "0x" + encode(["uint256[]"], [list(prices)]).hex()


REVERT_NOT_OWNER = "0x08c379a0" + encode(["string"], ["not owner"]).hex()
SIMULATED = [
    {
        "calls": [
            {"status": "0x1", "returnData": "0x"},
            {"status": "0x1", "returnData": prices_data(100, 200)},
        ]
    }
]
DIFF = {
    "pre": {
        FEED.upper().replace("0X", "0x"): {
            "balance": "0x0",
            "nonce": 1,
            "storage": {word(2): word(5), word(3): word(9)},
        },
        SENDER: {"balance": "0x10", "nonce": 6},
    },
    "post": {
        FEED.upper().replace("0X", "0x"): {"storage": {word(2): word(7), word(4): "0x1"}},
        SENDER: {"nonce": 7},
    },
}
OVERRIDE = {FEED: {"stateDiff": {word(2): word(7), word(3): word(0), word(4): word(1)}}}
UNSUPPORTED = RpcError("eth_simulateV1", "Method not found", -32601)

Answer = Any  # a result, or an RpcError to raise


class FakeNode:
    """Answers each method (debug_traceCall: each tracer) as scripted; records the requests."""

    def __init__(self, **answers: Answer) -> None:
        self.answers = answers
        self.requests: list[tuple[str, list[Any]]] = []

    def call(self, method: str, params: Sequence[Any] = ()) -> Any:
        self.requests.append((method, list(params)))
        key = method
        if method == "debug_traceCall":
            key = params[2]["tracer"]
        answer = self.answers[key]
        if isinstance(answer, RpcError):
            raise answer
        return answer

    def methods(self) -> list[str]:
        return [method for method, _params in self.requests]


def fallback_node(**changes: Answer) -> FakeNode:
    answers: dict[str, Answer] = {
        "eth_simulateV1": UNSUPPORTED,
        "eth_blockNumber": BLOCK,
        "callTracer": {"type": "CALL", "from": SENDER, "to": FEED, "gasUsed": "0x1"},
        "prestateTracer": DIFF,
        "eth_call": prices_data(300, 400),
    }
    answers.update(changes)
    return FakeNode(**answers)


def predictor(node: FakeNode, methods: Sequence[Method] = tuple(Method)) -> PricePredictor:
    return PricePredictor(node, ORACLE, methods=methods)


# The method chosen, and what is remembered.


def test_simulation_is_used_when_the_node_has_it() -> None:
    node = FakeNode(eth_simulateV1=SIMULATED)

    prediction = predictor(node).predict(TX, ASSETS, timestamp=1_700_000_012)

    assert prediction.method == "eth_simulateV1"
    assert prediction.prices == {ASSETS[0].lower(): 100, ASSETS[1]: 200}
    ((_method, (request, tag)),) = node.requests
    (block,) = request["blockStateCalls"]
    assert tag == "latest"
    assert block["blockOverrides"] == {"time": hex(1_700_000_012)}
    assert block["calls"][0] == {k: v for k, v in TX.items() if k != "nonce"}
    assert block["calls"][1]["to"] == ORACLE


def test_without_simulation_the_fallback_is_used_and_remembered() -> None:
    node = fallback_node()
    predict = predictor(node)

    first = predict.predict(TX, ASSETS)
    second = predict.predict(TX, ASSETS)

    assert first == second
    assert first.method == "debug_traceCall+eth_call override"
    assert first.prices == {ASSETS[0].lower(): 300, ASSETS[1]: 400}
    assert node.methods().count("eth_simulateV1") == 1
    assert Method.SIMULATE in predict.unsupported


@pytest.mark.parametrize(
    "error",
    [
        RpcError("eth_simulateV1", "Method not found", -32601),
        RpcError("eth_simulateV1", "Method not supported", -32004),
        RpcError("eth_simulateV1", "the method eth_simulateV1 does not exist/is not available"),
        RpcError("eth_simulateV1", "The method 'eth_simulateV1' is not supported.", -32000),
        RpcError("eth_simulateV1", "Unsupported method: eth_simulateV1 on ETH_MAINNET", -32600),
    ],
)
def test_each_way_of_saying_unsupported_switches_to_the_fallback(error: RpcError) -> None:
    node = fallback_node(eth_simulateV1=error)

    assert predictor(node).predict(TX, ASSETS).method == Method.TRACE_AND_OVERRIDE


@pytest.mark.parametrize(
    "error",
    [
        RpcError("eth_simulateV1", "invalid argument 0: json: cannot unmarshal", -32602),
        RpcError("eth_simulateV1", "header not found", -32000),
        RpcError("eth_simulateV1", "execution reverted", 3),
        RpcTransportError("eth_simulateV1", "ReadTimeout talking to http://node"),
    ],
)
def test_other_simulation_errors_fail_this_prediction_only(error: RpcError) -> None:
    node = fallback_node(eth_simulateV1=error)
    predict = predictor(node)

    with pytest.raises(PredictionUnavailable, match=re.escape(str(error))):
        predict.predict(TX, ASSETS)

    assert node.methods() == ["eth_simulateV1"]  # no fallback for a failure
    assert predict.unsupported == {}


def test_a_node_with_neither_method_says_so_and_is_not_asked_again() -> None:
    missing = RpcError("debug_traceCall", "the method debug_traceCall does not exist", -32601)
    node = fallback_node(callTracer=missing)
    predict = predictor(node)

    with pytest.raises(PredictionUnavailable) as first:
        predict.predict(TX, ASSETS)
    with pytest.raises(PredictionUnavailable) as second:
        predict.predict(TX, ASSETS)

    message = str(first.value)
    assert "supports none" in message
    assert "eth_simulateV1" in message
    assert "debug_traceCall+eth_call override" in message
    assert str(second.value) == message
    assert node.methods() == ["eth_simulateV1", "eth_blockNumber", "debug_traceCall"]


def test_an_unknown_tracer_counts_as_unsupported() -> None:
    node = fallback_node(prestateTracer=RpcError("debug_traceCall", "tracer not found", -32000))

    with pytest.raises(PredictionUnavailable, match="supports none"):
        predictor(node).predict(TX, ASSETS)


def test_a_forced_method_is_the_only_one_tried() -> None:
    node = fallback_node(eth_simulateV1=SIMULATED)

    prediction = predictor(node, [Method.TRACE_AND_OVERRIDE]).predict(TX, ASSETS)

    assert prediction.method == Method.TRACE_AND_OVERRIDE
    assert "eth_simulateV1" not in node.methods()
    with pytest.raises(ValueError, match="at least one method"):
        predictor(node, [])


def test_a_forced_method_the_node_lacks_is_named() -> None:
    node = FakeNode(eth_simulateV1=UNSUPPORTED)

    with pytest.raises(PredictionUnavailable, match="does not support eth_simulateV1"):
        predictor(node, [Method.SIMULATE]).predict(TX, ASSETS)


def test_predict_prices_falls_back_too() -> None:
    node = fallback_node()

    assert predict_prices(node, TX, ORACLE, ASSETS) == {ASSETS[0].lower(): 300, ASSETS[1]: 400}


# The fallback's requests and the state override.


def test_the_fallback_pins_one_block_and_overrides_the_written_storage() -> None:
    node = fallback_node()

    predictor(node).predict(TX, ASSETS, timestamp=1_700_000_012)

    time = {"time": hex(1_700_000_012)}
    call = {k: v for k, v in TX.items() if k != "nonce"}
    _simulate, _number, status, trace, read = node.requests
    assert status == (
        "debug_traceCall",
        [
            call,
            BLOCK,
            {"tracer": "callTracer", "tracerConfig": {"onlyTopCall": True}, "blockOverrides": time},
        ],
    )
    assert trace == (
        "debug_traceCall",
        [
            call,
            BLOCK,
            {
                "tracer": "prestateTracer",
                "tracerConfig": {"diffMode": True},
                "blockOverrides": time,
            },
        ],
    )
    method, (oracle_call, tag, override, block_override) = read
    assert (method, oracle_call["to"], tag) == ("eth_call", ORACLE, BLOCK)
    assert override == OVERRIDE
    assert block_override == time


def test_without_a_timestamp_no_block_time_is_overridden() -> None:
    node = fallback_node()

    predictor(node).predict(TX, ASSETS)

    assert all("blockOverrides" not in params[2] for _m, params in node.requests[2:4])
    assert len(node.requests[-1][1]) == 3


def test_the_override_zeroes_cleared_slots_and_writes_new_ones_as_words() -> None:
    assert storage_override(DIFF) == OVERRIDE


def test_the_override_zeroes_the_slots_of_an_account_missing_from_post() -> None:
    diff = {"pre": {FEED: {"storage": {"0x1": "0x2"}}}, "post": {}}

    assert storage_override(diff) == {FEED: {"stateDiff": {word(1): word(0)}}}


def test_an_update_that_writes_no_storage_overrides_nothing() -> None:
    diff = {"pre": {SENDER: {"balance": "0x10", "nonce": 6}}, "post": {SENDER: {"nonce": 7}}}

    assert storage_override(diff) == {}


@pytest.mark.parametrize(
    ("diff", "problem"),
    [
        ({FEED: {"storage": {}}}, "no 'pre' object"),  # prestate mode: diffMode ignored
        ({"pre": {}, "post": []}, "no 'post' object"),
        ({"pre": {}, "post": {FEED: "0x"}}, "not an object"),
        ({"pre": {}, "post": {FEED: {"storage": []}}}, "not an object"),
        ({"pre": {}, "post": {"0x12": {"storage": {"0x1": "0x1"}}}}, "bad address"),
        ({"pre": {}, "post": {FEED: {"storage": {"0x1": "0xzz"}}}}, "bad storage word"),
        ({"pre": {}, "post": {FEED: {"storage": {"0x1": "0x" + "1" * 65}}}}, "bad storage word"),
        ({"pre": {}, "post": {FEED: {"storage": {"0x1": 5}}}}, "bad storage word"),
    ],
)
def test_a_malformed_diff_is_rejected(diff: object, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        storage_override(diff)


# Reverts and malformed answers: never a price.


def test_a_reverting_transaction_is_reported_by_simulation() -> None:
    calls = [{"status": "0x0", "returnData": REVERT_NOT_OWNER}, {"status": "0x1"}]
    node = FakeNode(eth_simulateV1=[{"calls": calls}])

    with pytest.raises(PredictionUnavailable, match=r"reverts: not owner \(eth_simulateV1\)"):
        predictor(node).predict(TX, ASSETS)


def test_a_reverting_transaction_is_reported_by_the_fallback() -> None:
    reverted = {"type": "CALL", "error": "execution reverted", "revertReason": "not owner"}
    node = fallback_node(callTracer=reverted)

    with pytest.raises(PredictionUnavailable, match=r"reverts: not owner \(debug_traceCall\)"):
        predictor(node).predict(TX, ASSETS)

    assert "eth_call" not in node.methods()  # the diff of a revert is never used


def test_a_transaction_that_runs_out_of_gas_is_reported_by_the_fallback() -> None:
    node = fallback_node(callTracer={"type": "CALL", "error": "out of gas"})

    with pytest.raises(PredictionUnavailable, match="reverts: out of gas"):
        predictor(node).predict(TX, ASSETS)


def test_an_oracle_read_that_reverts_is_reported_by_simulation() -> None:
    calls = [{"status": "0x1", "returnData": "0x"}, {"status": "0x0", "returnData": "0x"}]
    node = FakeNode(eth_simulateV1=[{"calls": calls}])

    with pytest.raises(PredictionUnavailable, match="getAssetsPrices reverts"):
        predictor(node).predict(TX, ASSETS)


def test_an_oracle_read_that_reverts_is_reported_by_the_fallback() -> None:
    node = fallback_node(eth_call=RpcError("eth_call", "execution reverted", 3))

    with pytest.raises(PredictionUnavailable, match=r"getAssetsPrices reverts .*\(eth_call\)"):
        predictor(node).predict(TX, ASSETS)


def _calls(*calls: object) -> list[dict[str, object]]:
    return [{"calls": list(calls)}]


OK = {"status": "0x1", "returnData": "0x"}


@pytest.mark.parametrize(
    "answer",
    [
        {"unexpected": True},
        [],
        SIMULATED * 2,
        _calls(OK),
        _calls(OK, OK, OK),
        _calls({"status": "0x2"}, OK),
        _calls({"status": 1}, OK),
        _calls({"returnData": "0x"}, OK),
        _calls(OK, {"status": "0x1", "returnData": "0x1234"}),
        _calls(OK, {"status": "0x1"}),
        _calls(OK, {"status": "0x1", "returnData": prices_data(1)}),  # one price for two
        _calls("0x", OK),
    ],
)
def test_a_malformed_simulation_answer_is_never_a_price(answer: object) -> None:
    node = FakeNode(eth_simulateV1=answer)

    with pytest.raises(PredictionUnavailable, match="malformed eth_simulateV1 answer"):
        predictor(node).predict(TX, ASSETS)


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"eth_blockNumber": 85}, "malformed eth_blockNumber"),
        ({"callTracer": ["0x"]}, r"malformed debug_traceCall \(callTracer\)"),
        ({"prestateTracer": {FEED: {"storage": {}}}}, "malformed debug_traceCall .*no 'pre'"),
        ({"prestateTracer": None}, r"malformed debug_traceCall \(prestateTracer diffMode\)"),
        ({"eth_call": "0x1234"}, "malformed eth_call answer"),
        ({"eth_call": None}, "malformed eth_call answer"),
        ({"eth_call": prices_data(1, 2, 3)}, "malformed debug_traceCall.*3 prices for 2"),
    ],
)
def test_a_malformed_fallback_answer_is_never_a_price(
    change: dict[str, Answer], problem: str
) -> None:
    node = fallback_node(**change)

    with pytest.raises(PredictionUnavailable, match=problem):
        predictor(node).predict(TX, ASSETS)


def test_a_failed_fallback_request_fails_this_prediction_only() -> None:
    node = fallback_node(eth_call=RpcError("eth_call", "header not found", -32000))
    predict = predictor(node)

    with pytest.raises(PredictionUnavailable, match="header not found"):
        predict.predict(TX, ASSETS)

    assert Method.TRACE_AND_OVERRIDE not in predict.unsupported
