"""The key submitter keeps its key to itself."""

from __future__ import annotations

import pytest

from overlord.chain.rpc import JsonRpcClient
from overlord.executor.submit import LIQUIDATOR_KEY_ENV, KeySubmitter

KEY = "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a"  # anvil's public #2


def test_a_bad_key_is_named_by_its_variable_not_echoed() -> None:
    bad = "0x" + "zz" * 32
    with pytest.raises(ValueError, match=LIQUIDATOR_KEY_ENV) as caught:
        KeySubmitter(JsonRpcClient("http://127.0.0.1:9"), bad)
    assert bad not in str(caught.value)


def test_the_repr_shows_the_sender_and_hides_the_key() -> None:
    submitter = KeySubmitter(JsonRpcClient("http://127.0.0.1:9"), KEY)
    assert submitter.sender == "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
    assert KEY[2:] not in repr(submitter)
    assert submitter.sender in repr(submitter)
