"""The example file loads, holds the defaults, and documents every setting."""

from __future__ import annotations

import re
from pathlib import Path

from overlord.config import SETTING_NAMES, Config, OutputConfig
from tests.unit.config.helpers import load

EXAMPLE = Path(__file__).parents[3] / "examples" / "overlord.toml"
SECRETS = (
    "chain.rpc_url",
    "chain.ws_url",
    "chain.fallback_rpc_urls",
    "feeds.chainlink_rpc_url",
    "tracker.subgraph_url",
    "tracker.subgraph_api_key",
    "notify.webhook_url",
)  # explained, never assigned


def test_the_example_loads_and_holds_exactly_the_defaults() -> None:
    config = load(EXAMPLE)

    # data_dir = "data" is relative to the file, the default to the working directory.
    assert config == Config(output=OutputConfig(data_dir=EXAMPLE.parent / "data"))


def test_the_example_documents_every_setting_set_or_commented() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")

    for section in dict.fromkeys(name.split(".")[0] for name in SETTING_NAMES):
        assert f"[{section}]" in text
    for name in SETTING_NAMES:
        key = name.split(".")[1]
        pattern = rf"\b{key}\b" if name in SECRETS else rf"^(# )?\s*{key} = |^\[{name}\]"
        assert re.search(pattern, text, re.MULTILINE), f"{name} is not in the example"


def test_the_example_assigns_no_secret() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")

    assert not re.search(
        r"^\s*(chainlink_rpc|rpc|ws|subgraph|webhook)_url\s*=|^\s*subgraph_api_key\s*=",
        text,
        re.MULTILINE,
    )
