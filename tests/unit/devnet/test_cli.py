"""``overlord devnet``: argument checks and one-line errors, without a chain."""

from __future__ import annotations

import socket
from pathlib import Path

from typer.testing import CliRunner

from overlord.cli import app
from overlord.devnet import cli as devnet_cli
from overlord.devnet.deploy import PROTOCOLS
from tests.unit.devnet.builders import manifest

runner = CliRunner()


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _manifest_file(tmp_path: Path) -> Path:
    path = tmp_path / "manifest.json"
    manifest().save(path)
    return path


def test_the_cli_offers_the_deployer_protocols() -> None:
    assert devnet_cli.PROTOCOLS == PROTOCOLS


def test_devnet_lists_up_and_scenario() -> None:
    result = runner.invoke(app, ["devnet", "--help"])

    assert result.exit_code == 0
    assert "up" in result.stdout
    assert "scenario" in result.stdout


def test_up_rejects_an_unknown_protocol_in_one_line() -> None:
    result = runner.invoke(app, ["devnet", "up", "--protocol", "3.1.0"])

    assert result.exit_code == 2
    assert result.stderr == "error: unknown protocol '3.1.0': choose 3.0.2 or 3.6.0\n"


def test_scenario_rejects_a_bad_manifest(tmp_path: Path) -> None:
    path = tmp_path / "manifest.json"
    path.write_text('{"schema": 1}')

    result = runner.invoke(
        app, ["devnet", "scenario", "--rpc-url", "http://127.0.0.1:1", "--manifest", str(path)]
    )

    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {path}: malformed manifest")
    assert result.stderr.count("\n") == 1


def test_scenario_rejects_a_bad_users_file(tmp_path: Path) -> None:
    users = tmp_path / "users.txt"
    users.write_text("0xnot-an-address\n")

    manifest_file = str(_manifest_file(tmp_path))
    command = ["devnet", "scenario", "--rpc-url", "http://127.0.0.1:1", "--manifest"]

    result = runner.invoke(app, [*command, manifest_file, "--users-file", str(users)])

    assert result.exit_code == 2
    assert "entry 1 is not an address" in result.stderr


def test_scenario_reports_an_unreachable_node_without_its_secrets(tmp_path: Path) -> None:
    url = f"http://user:pass@127.0.0.1:{_closed_port()}/v2/secret-key"

    result = runner.invoke(
        app, ["devnet", "scenario", "--rpc-url", url, "--manifest", str(_manifest_file(tmp_path))]
    )

    assert result.exit_code == 2
    assert result.stderr.startswith("error: cannot reach the node: eth_chainId: ConnectError")
    assert "secret" not in result.stderr
    assert "pass" not in result.stderr
    assert result.stderr.count("\n") == 1
