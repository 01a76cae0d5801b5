"""Feed overrides, and prediction failures that must never become a wrong price."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pytest

from overlord.chain.rpc import JsonRpcClient, RpcError
from overlord.feeds.predict import PredictionUnavailable, predict_prices
from overlord.feeds.sources import load_feed_overrides, merge

ASSET = "0x" + "a1" * 20
FEED = "0x" + "f1" * 20
ORACLE = "0x" + "0c" * 20


def test_overrides_map_feeds_to_assets_and_skip_headers_and_comments(tmp_path: Path) -> None:
    path = tmp_path / "feeds.csv"
    header = "asset_symbol,aave_asset_address,chainlink_contract_address"
    feed = FEED.upper().replace("0X", "0x")
    path.write_text(f"{header}\n# note\n\nWETH,{ASSET},{feed}\n")

    assert load_feed_overrides(path) == {FEED: {ASSET}}


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        (f"WETH,{ASSET}", "expected 3 columns"),
        (f"WETH,nope,{FEED}", "aave_asset_address 'nope'"),
        (f"WETH,{ASSET},0x12", "chainlink_contract_address '0x12'"),
    ],
)
def test_a_bad_override_line_is_named_by_its_number(
    tmp_path: Path, line: str, problem: str
) -> None:
    path = tmp_path / "feeds.csv"
    path.write_text(f"# header comment\n{line}\n")

    with pytest.raises(ValueError, match=rf"feeds.csv:2: .*{problem}"):
        load_feed_overrides(path)


def test_merge_unions_the_assets_of_each_feed() -> None:
    assert merge({FEED: {ASSET}}, {FEED: {"0x" + "a2" * 20}}) == {FEED: {ASSET, "0x" + "a2" * 20}}


class FakeNode:
    def __init__(self, answer: Any = None, error: RpcError | None = None) -> None:
        self.answer, self.error = answer, error

    def call(self, method: str, params: Any = ()) -> Any:
        if self.error is not None:
            raise self.error
        return self.answer


def _predict(node: FakeNode) -> dict[str, int]:
    tx = {"from": ASSET, "to": FEED, "input": "0x", "gas": "0x1"}
    return predict_prices(cast(JsonRpcClient, node), tx, ORACLE, [ASSET], timestamp=5)


@pytest.mark.parametrize(
    "node",
    [
        FakeNode(error=RpcError("eth_simulateV1", "method not found", -32601)),
        FakeNode(answer=[{"calls": [{"status": "0x0", "returnData": "0x"}, {}]}]),
        FakeNode(answer=[{"calls": [{"status": "0x1"}]}]),
        FakeNode(answer={"unexpected": True}),
        FakeNode(answer=[{"calls": [{"status": "0x1"}, {"returnData": "0x1234"}]}]),
    ],
)
def test_a_prediction_that_cannot_be_made_says_so(node: FakeNode) -> None:
    with pytest.raises(PredictionUnavailable):
        _predict(node)
