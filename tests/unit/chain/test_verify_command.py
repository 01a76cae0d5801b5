"""``overlord verify`` without a chain: bad input exits 2 with one line, URLs stay redacted."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from overlord.aave import (
    Market,
    ProtocolVersion,
    Reserve,
    ReserveConfiguration,
    UserAccount,
    user_configuration_word,
)
from overlord.chain.reader import MarketState
from overlord.verify import ACCOUNT_FIELDS, UserCheck, check_user, verify_command

POOL = "0x" + "11" * 20
runner = CliRunner()


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command()(verify_command)
    return app


def _invoke(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = runner.invoke(_app(), list(args), env=env or {})
    return result.exit_code, result.output


def test_without_an_rpc_url_it_exits_2() -> None:
    code, output = _invoke("--pool", POOL, "--from-block", "0")

    assert code == 2
    assert "no RPC URL: pass --rpc-url or set OVERLORD_RPC_URL" in output


def test_a_url_that_is_not_http_exits_2_without_showing_its_secret_parts() -> None:
    code, output = _invoke("--rpc-url", "wss://user:hunter2@node.example/v3/KEY123", "--pool", POOL)

    assert code == 2
    assert "is not an http(s) URL" in output
    assert "hunter2" not in output
    assert "KEY123" not in output


@pytest.mark.parametrize(
    "args",
    [
        ("--pool", POOL, "--manifest", "m.json"),
        (
            "--from-block",
            "0",
        ),
    ],
)
def test_exactly_one_of_manifest_and_pool_is_needed(args: tuple[str, ...]) -> None:
    code, output = _invoke("--rpc-url", "http://127.0.0.1:1", *args)

    assert code == 2
    assert (
        "pass exactly one of --manifest, --pool, --market and --pool-addresses-provider" in output
    )


def test_an_unreadable_manifest_exits_2(tmp_path: Path) -> None:
    code, output = _invoke(
        "--rpc-url", "http://127.0.0.1:1", "--manifest", str(tmp_path / "no.json")
    )

    assert code == 2
    assert "cannot read manifest" in output


def test_a_pool_that_is_not_an_address_exits_2() -> None:
    code, output = _invoke("--rpc-url", "http://127.0.0.1:1", "--pool", "0x1234")

    assert code == 2
    assert "--pool '0x1234' is not an address" in output


def test_an_unknown_protocol_version_exits_2() -> None:
    code, output = _invoke(
        "--rpc-url",
        "http://127.0.0.1:1",
        "--pool",
        POOL,
        "--from-block",
        "0",
        "--protocol-version",
        "2.0",
    )

    assert code == 2
    assert "unsupported protocol version '2.0'" in output


def test_an_unreachable_node_exits_2_and_the_url_comes_from_the_environment() -> None:
    code, output = _invoke(
        "--pool", POOL, "--from-block", "0", env={"OVERLORD_RPC_URL": "http://127.0.0.1:1/SECRET"}
    )

    assert code == 2
    assert "cannot reach the node" in output
    assert "http://127.0.0.1:1/…" in output
    assert "SECRET" not in output
    assert len(output.strip().splitlines()) == 1


def test_discovery_needs_a_first_block_when_no_addresses_file_is_given() -> None:
    code, output = _invoke("--rpc-url", "http://127.0.0.1:1", "--pool", POOL, "--block", "5")

    assert code == 2
    assert "--from-block is needed" in output


def test_an_unreadable_addresses_file_exits_2(tmp_path: Path) -> None:
    code, output = _invoke(
        "--rpc-url",
        "http://127.0.0.1:1",
        "--pool",
        POOL,
        "--block",
        "5",
        "--addresses",
        str(tmp_path / "absent.txt"),
    )

    assert code == 2
    assert "cannot read addresses file" in output


def test_a_check_names_the_fields_that_differ() -> None:
    chain = (1, 2, 3, 4, 5, 6)

    assert UserCheck(POOL, chain, chain).matches
    assert UserCheck(POOL, (1, 2, 3, 4, 0, 7), chain).differing_fields == ("ltv", "healthFactor")
    failed = UserCheck(POOL, None, chain, "ArithmeticRevert: overflow")
    assert not failed.matches
    assert failed.differing_fields == ACCOUNT_FIELDS


def test_a_user_our_math_refuses_is_a_mismatch_with_the_reason() -> None:
    asset = "0x" + "e1" * 20
    reserve = Reserve(
        id=0,
        asset=asset,
        configuration=ReserveConfiguration(
            ltv=8000, liquidation_threshold=8250, liquidation_bonus=10500
        ),
        liquidity_index=10**27,
        variable_borrow_index=10**27,
    )
    market = Market(version=ProtocolVersion.V3_6, reserves={0: reserve}, prices={})
    state = MarketState(market, 1, 1_700_000_000, {}, POOL, POOL)
    user = UserAccount(address=POOL, configuration=user_configuration_word(collateral=[0]))

    check = check_user(state, user, (1, 0, 0, 0, 0, 2**256 - 1))

    assert check.ours is None
    assert check.error is not None
    assert check.error.startswith("MissingPriceError")
    assert not check.matches
