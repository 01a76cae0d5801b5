"""Fixtures for tests against the real Aave contracts on anvil.

One chain per protocol version for the whole run (started from the cache when warm),
and an ``evm_snapshot`` / ``evm_revert`` around every test that uses one, so tests never
see each other's transactions.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from overlord.chain.rpc import JsonRpcClient
from overlord.devnet.launch import Devnet, running_devnet

SEEDED_USERS = 120
SEED = 7


@pytest.fixture(scope="session", params=["3.0.2", "3.6.0"])
def session_devnet(request: pytest.FixtureRequest) -> Iterator[Devnet]:
    """A seeded chain per protocol version, shared by the whole test session."""
    with running_devnet(request.param, users=SEEDED_USERS, seed=SEED) as devnet:
        yield devnet


def reverted_after(chain: Devnet) -> Iterator[Devnet]:
    """``chain``, then ``evm_revert`` to the snapshot taken before (a fixture's body)."""
    with JsonRpcClient(chain.rpc_url) as client:
        snapshot = client.call("evm_snapshot")
        try:
            yield chain
        finally:
            client.call("evm_revert", [snapshot])


@pytest.fixture
def devnet(session_devnet: Devnet) -> Iterator[Devnet]:
    """The session chain, reverted to its seeded state after the test."""
    yield from reverted_after(session_devnet)


@pytest.fixture
def rpc(devnet: Devnet) -> Iterator[JsonRpcClient]:
    """A JSON-RPC client for the test's chain."""
    with devnet.client() as client:
        yield client
