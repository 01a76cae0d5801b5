"""The ``overlord`` command line: output contract, exit codes and messages."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from overlord.aave import calculate_user_account_data
from overlord.cli import ACCOUNT_KEYS, app, main
from overlord.snapshot import load_snapshot
from tests.unit.snapshot_documents import SPEC_3_5_PLUS, USER, spec_example

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
runner = CliRunner()


def _write(tmp_path: Path, document: Any) -> Path:
    path = tmp_path / "snapshot.json"
    path.write_text(json.dumps(document))
    return path


def test_json_output_is_one_object_with_the_six_outputs(tmp_path: Path) -> None:
    path = _write(tmp_path, spec_example())

    result = runner.invoke(app, ["account-data", str(path), "--json"])

    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document == {"user": USER, **dict(zip(ACCOUNT_KEYS, SPEC_3_5_PLUS, strict=True))}


def test_json_output_has_one_line_per_user_of_the_example() -> None:
    path = EXAMPLES / "market-3.6.json"
    snapshot = load_snapshot(path)

    result = runner.invoke(app, ["account-data", str(path), "--json"])

    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["user"] for line in lines] == [user.address for user in snapshot.users]
    for line, user in zip(lines, snapshot.users, strict=True):
        expected = calculate_user_account_data(snapshot.market, user, snapshot.block_timestamp)
        assert tuple(line[key] for key in ACCOUNT_KEYS) == expected.as_tuple()


def test_user_option_selects_one_user(tmp_path: Path) -> None:
    path = EXAMPLES / "market-3.0.2.json"

    result = runner.invoke(
        app,
        [
            "account-data",
            str(path),
            "--json",
            "--user",
            "0x0000000000000000000000000000000000002003",
        ],
    )

    assert result.exit_code == 0
    assert len(result.stdout.splitlines()) == 1
    assert json.loads(result.stdout)["ltv"] == 0  # LTV-0 reserve in eMode on 3.0.2


def test_readable_output_shows_values_and_liquidations() -> None:
    result = runner.invoke(
        app, ["account-data", str(EXAMPLES / "market-3.6.json")], env={"COLUMNS": "120"}
    )

    assert result.exit_code == 0
    assert "Aave v3.6" in result.stdout
    assert "healthFactor" in result.stdout
    assert "liquidatable" in result.stdout
    assert "largest liquidation the Pool accepts" in result.stdout
    assert "wstETH/WETH" in result.stdout
    assert "MAX" in result.stdout
    assert "no debt" in result.stdout


def test_bad_input_exits_2_and_names_the_field(tmp_path: Path) -> None:
    document = spec_example()
    document["reserves"][0]["asset"] = "0xnothex"
    path = _write(tmp_path, document)

    result = runner.invoke(app, ["account-data", str(path)])

    assert result.exit_code == 2
    assert "reserves[0].asset" in result.stderr
    assert "40-hex-digit address" in result.stderr


def test_unknown_user_exits_2(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["account-data", str(_write(tmp_path, spec_example())), "-u", "0x" + "99" * 20]
    )

    assert result.exit_code == 2
    assert "no user" in result.stderr


def test_missing_price_exits_2_and_names_the_asset(tmp_path: Path) -> None:
    document = spec_example()
    document["emode_categories"] = [
        {
            "id": 1,
            "ltv": 9000,
            "liquidation_threshold": 9300,
            "liquidation_bonus": 10100,
            "price_source": "0x" + "ee" * 20,
        }
    ]
    document["users"][0]["emode_category"] = 1
    document["protocol_version"] = "3.0.2"
    path = _write(tmp_path, document)

    result = runner.invoke(app, ["account-data", str(path)])

    assert result.exit_code == 2
    assert "no oracle price for asset 0x" + "ee" * 20 in result.stderr


def test_a_computation_the_contract_would_revert_exits_1(tmp_path: Path) -> None:
    document = spec_example()
    document["block_timestamp"] = 1  # before the reserves' last update: checked subtraction reverts
    path = _write(tmp_path, document)

    result = runner.invoke(app, ["account-data", str(path)])

    assert result.exit_code == 1
    assert "would revert" in result.stderr


def test_no_arguments_shows_help() -> None:
    result = runner.invoke(app, [])

    assert "account-data" in result.output


def test_version_option_prints_the_version() -> None:
    result = runner.invoke(app, ["--version"])

    assert result.exit_code == 0
    assert result.stdout.startswith("overlord 0.")


@pytest.mark.parametrize("args", [["--help"], ["account-data", "--help"]])
def test_module_entry_point_prints_help(args: list[str]) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "overlord", *args], capture_output=True, text=True, check=False
    )

    assert completed.returncode == 0
    assert "account-data" in completed.stdout or "SNAPSHOT.json" in completed.stdout


def test_a_pair_the_pool_would_reject_shows_the_revert_reason(tmp_path: Path) -> None:
    document = spec_example()
    document["reserves"][0]["price"] = 200_000_000_000  # WETH at 2000: HF drops below 1
    document["reserves"][1]["configuration"]["paused"] = True
    path = _write(tmp_path, document)

    result = runner.invoke(app, ["account-data", str(path)], env={"COLUMNS": "160"})

    assert result.exit_code == 0
    assert "liquidatable" in result.stdout
    assert "reverts ReservePaused" in result.stdout


def test_console_script_main_runs_the_app(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["overlord", "--version"])

    with pytest.raises(SystemExit) as raised:
        main()

    assert raised.value.code == 0
