"""The typed configuration of ``overlord run`` and of every chain command.

:func:`load_config` reads it once, at start, and validates all of it; the result is a
frozen :class:`Config` of frozen sections. Sources, in increasing precedence:

1. the defaults (the section classes' field defaults);
2. a TOML file (``--config PATH``); relative paths in it are relative to its folder;
3. the environment: ``OVERLORD__<SECTION>__<KEY>`` for every setting, plus the prior
   systems' names, which keep working (docs/prior-art.md §1.9, §2.6):

   ==================================  ============================
   variable                            setting
   ==================================  ============================
   ``OVERLORD_RPC_URL`` (secret)       ``chain.rpc_url``
   ``OVERLORD_WS_URL`` (secret)        ``chain.ws_url``
   ``OVERLORD_RPC_FALLBACK_URLS`` (s.)  ``chain.fallback_rpc_urls``
   ``VEGA_ADDRESSES_FILE``             ``users.addresses_file``
   ``TEMP_OUTPUT_DIR``                 ``output.temp_output_dir``
   ``PROFIT_FEE_BPS``                  ``profit.fee_bps``
   ``PROFIT_MIN_USD``                  ``profit.min_usd``
   ``GAS_COST_USD``                    ``profit.gas_cost_usd``
   ``VEGA_CHAINLINK_ADDRESSES_FILE``   ``feeds.chainlink_addresses_file``
   ``CHAINLINK_RPC_URL`` (secret)      ``feeds.chainlink_rpc_url``
   ``CHAINLINK_FEEDS``                 ``feeds.chainlink_feeds``
   ``POLL_LIMIT``                      ``tracker.poll_limit``
   ``IGNORE_BOOTSTRAP_BATCH``          ``tracker.ignore_bootstrap_batch``
   ``SUBGRAPH_DEBUG_ERRORS``           ``tracker.subgraph_debug_errors``
   ``SUBGRAPH_URL`` (secret)           ``tracker.subgraph_url``
   ``GRAPH_API_KEY`` (secret)          ``tracker.subgraph_api_key``
   ``OVERLORD_WEBHOOK_URL`` (secret)   ``notify.webhook_url``
   ``METRICS_PORT``                    ``http.port``
   ==================================  ============================

   An empty variable counts as unset. Two names of one setting set to different values
   are an error, as is an ``OVERLORD__...`` variable that names no setting;
4. command-line flags: the caller passes ``{dotted name: value}`` for the flags that were
   given (``None`` values are skipped, so unset options can be passed through).

Rules:

* Secrets (``chain.rpc_url``, ``chain.ws_url``, ``feeds.chainlink_rpc_url``,
  ``tracker.subgraph_url``, ``tracker.subgraph_api_key``, ``notify.webhook_url``) come only
  from the environment or a flag, never from the file, which gets committed, copied and
  shared. They are held
  as :class:`SecretUrl`, whose ``repr``/``str`` and :meth:`Config.describe` show only
  :func:`~overlord.chain.rpc.redact_url`; :meth:`SecretUrl.reveal` gives the URL.
* The market is one setting with four spellings in ``[chain]``: ``market`` (a preset
  name, a PoolAddressesProvider address or a manifest path, told apart by
  :meth:`MarketRef.parse`), ``manifest``, ``pool_addresses_provider`` and ``preset``.
  One source may give only one of them; a higher source replaces the lower one's choice.
* Every value is checked: types (a file value must have the right TOML type; environment
  and flag strings are converted), ranges (positive intervals, bps 0..10000, ports),
  existing files, unknown keys (a typo never passes silently), booleans from strings
  only as true/false/1/0/yes/no.

Every problem is a :class:`ConfigError` naming the setting and the source it came from.
"""

from __future__ import annotations

import difflib
import math
import os
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

from overlord.chain.batch import normalize_address
from overlord.chain.market_ref import MarketRef
from overlord.chain.rpc import redact_url


class ConfigError(ValueError):
    """A setting is missing, malformed or out of range.

    Attributes:
        setting: the dotted name (``chain.rpc_url``), or ``config`` for the file itself.
        source: where the value came from: ``file PATH``, ``env NAME``, ``flag NAME``.
        reason: what is wrong, without the value of a secret.
    """

    def __init__(self, setting: str, source: str, reason: str) -> None:
        super().__init__(f"{setting} ({source}): {reason}")
        self.setting = setting
        self.source = source
        self.reason = reason


@dataclass(frozen=True, slots=True)
class SecretUrl:
    """A URL that may carry an API key; shown only redacted."""

    _value: str

    def reveal(self) -> str:
        """The URL itself, for the one place that connects with it."""
        return self._value

    def __repr__(self) -> str:
        return f"SecretUrl({redact_url(self._value)!r})"

    def __str__(self) -> str:
        return redact_url(self._value)


@dataclass(frozen=True, slots=True)
class SecretText:
    """A secret that is not a URL (an API key); never shown."""

    _value: str

    def reveal(self) -> str:
        """The secret itself, for the one place that uses it."""
        return self._value

    def __repr__(self) -> str:
        return "SecretText(***)"

    def __str__(self) -> str:
        return "***"


class ZmqMode(StrEnum):
    """How events leave: PUSH to one consumer (the prior system's way) or PUB with topics."""

    PUSH = "push"
    PUB = "pub"


# The sections.


@dataclass(frozen=True, slots=True)
class ChainConfig:
    """``[chain]``: the node and the market.

    ``rpc_url`` ``None`` means the embedded local chain; ``market`` ``None`` means the
    embedded local chain's own market. ``ws_url`` is the node's WebSocket, for pushed
    heads, logs and pending transactions; ``None`` means polling over HTTP every
    ``poll_interval_s``. ``buckets`` is how many read batches may be in flight at once;
    ``batch_size`` the most requests per JSON-RPC batch. ``fallback_rpc_urls`` are more
    nodes of the same chain: requests fail over to them (and back) by health, up to
    ``rpc_attempts`` tries each, at most ``rpc_rate_limit_per_s`` per node (0: no limit).
    """

    rpc_url: SecretUrl | None = None
    ws_url: SecretUrl | None = None
    market: MarketRef | None = None
    poll_interval_s: float = 1.0
    request_timeout_s: float = 30.0
    buckets: int = 4
    batch_size: int = 500
    fallback_rpc_urls: tuple[SecretUrl, ...] = ()
    rpc_attempts: int = 3
    rpc_rate_limit_per_s: float = 0.0


@dataclass(frozen=True, slots=True)
class UsersConfig:
    """``[users]``: where the users come from.

    ``addresses_file`` lists users one per line (vega's ``VEGA_ADDRESSES_FILE``);
    ``backfill`` also scans the Pool's logs, from ``from_block`` (default: the deployment
    block when the market is a manifest).
    """

    addresses_file: Path | None = None
    backfill: bool = True
    from_block: int | None = None


@dataclass(frozen=True, slots=True)
class DetectionConfig:
    """``[detection]``: which underwater users count, in the oracle's base currency units.

    Amounts are ``totalCollateralBase`` units: 8 decimals on USD markets, so 10**8 is one
    US dollar and vega's hard-coded ``totalCollateralBase > 1e10`` is 10**10 (about $100).
    ``min_collateral_base`` plays vega's ``MIN_COLLATERAL_THRESHOLD_IN_USD``: an underwater
    user with at most this much collateral is not a liquidation candidate.
    ``min_reportable_collateral_base`` plays ``MIN_REPORTABLE_COLLATERAL``: the least
    collateral for an event to be published; it cannot be below the first. Both default
    to 0, every underwater user. ``reannounce_interval_s``: how often a user who stays
    underwater is announced again.
    """

    min_collateral_base: int = 0
    min_reportable_collateral_base: int = 0
    reannounce_interval_s: float = 60.0


@dataclass(frozen=True, slots=True)
class OutputConfig:
    """``[output]``: the event socket, files and logs.

    ``zmq_endpoint`` ``None`` is the publisher's default, ``ipc://<data_dir>/overlord-
    events.ipc`` (:func:`overlord.outputs.default_endpoint`). ``liquidations_endpoint``
    is the tracker's PUB socket for new liquidations (topic ``liquidation``); ``None``:
    ``ipc://<data_dir>/overlord-liquidations.ipc``. ``zmq_topic`` is for PUB
    only; ``None`` is the publisher's default topic. ``temp_output_dir`` (vega's
    ``TEMP_OUTPUT_DIR``) must already exist; ``data_dir`` is created when needed.
    """

    zmq_endpoint: str | None = None
    zmq_mode: ZmqMode = ZmqMode.PUSH
    zmq_topic: str | None = None
    liquidations_endpoint: str | None = None
    data_dir: Path = Path("data")
    temp_output_dir: Path | None = None
    log_json: bool = False


@dataclass(frozen=True, slots=True)
class ProfitConfig:
    """``[profit]``: LiquidBot's ProfitCalculator settings (decimal, never float)."""

    fee_bps: int = 30
    min_usd: Decimal = Decimal(10)
    gas_cost_usd: Decimal = Decimal(0)


@dataclass(frozen=True, slots=True)
class FeedsConfig:
    """``[feeds]``: price feeds beside the Aave oracle.

    ``chainlink_feeds`` is ``((symbol, feed address), ...)``: from the environment as
    LiquidBot's ``SYM:0xaddr,SYM:0xaddr``, in the file as a table ``{SYM = "0xaddr"}``.
    """

    chainlink_addresses_file: Path | None = None
    chainlink_rpc_url: SecretUrl | None = None
    chainlink_feeds: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class TrackerConfig:
    """``[tracker]``: the liquidation tracker (LiquidBot's, with a cursor and no losses).

    ``source`` is ``logs`` (the Pool's ``LiquidationCall`` logs through the RPC node) or
    ``subgraph`` (``subgraph_url``, with ``subgraph_api_key`` as a bearer token);
    ``poll_limit`` is the subgraph's page size. ``confirmations`` keeps the log source that
    many blocks behind the head; ``from_block`` is where a cold start's first scan begins
    (default: the head). ``on_demand_health_factor`` computes each liquidated user's exact
    account data before and after (needs an archive node for past blocks).
    """

    enabled: bool = True
    source: str = "logs"
    poll_interval_s: float = 2.0
    poll_limit: int = 5
    ignore_bootstrap_batch: bool = True
    subgraph_debug_errors: bool = False
    subgraph_url: SecretUrl | None = None
    subgraph_api_key: SecretText | None = None
    confirmations: int = 0
    from_block: int | None = None
    on_demand_health_factor: bool = True


@dataclass(frozen=True, slots=True)
class VerifierConfig:
    """``[verifier]``: random users checked against ``getUserAccountData`` per block
    (0: off), and the health-factor tolerance in wad (0: exact)."""

    sample_users_per_block: int = 8
    tolerance_wad: int = 0


@dataclass(frozen=True, slots=True)
class StateConfig:
    """``[state]``: the engine's checkpoint in ``DATA_DIR/engine.sqlite`` (a restart loads
    it and catches up instead of syncing every user again), the background reconciliation
    of every user against the chain every ``reconcile_interval_s`` (0: off), the addresses
    file watched every ``watch_addresses_s`` (0: off), and how many users a warm restart
    checks against ``getUserAccountData`` before going live."""

    enabled: bool = True
    reconcile_interval_s: float = 600.0
    watch_addresses_s: float = 2.0
    restart_verify_users: int = 64


@dataclass(frozen=True, slots=True)
class HttpConfig:
    """``[http]``: ``/metrics``, ``/health`` and ``/ready``; loopback unless told otherwise.
    ``port`` 0 picks a free port (logged at start)."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 9464
    metrics_prefix: str = "overlord_"


@dataclass(frozen=True, slots=True)
class NotifyConfig:
    """``[notify]``: a webhook that gets a JSON POST per new liquidation and opportunity."""

    webhook_url: SecretUrl | None = None


_SECTIONS: Final[Mapping[str, type]] = MappingProxyType(
    {
        "chain": ChainConfig,
        "users": UsersConfig,
        "detection": DetectionConfig,
        "output": OutputConfig,
        "profit": ProfitConfig,
        "feeds": FeedsConfig,
        "tracker": TrackerConfig,
        "verifier": VerifierConfig,
        "state": StateConfig,
        "http": HttpConfig,
        "notify": NotifyConfig,
    }
)


@dataclass(frozen=True, slots=True)
class Config:
    """The whole configuration. ``origins`` maps each dotted name to where it came from."""

    chain: ChainConfig = field(default_factory=ChainConfig)
    users: UsersConfig = field(default_factory=UsersConfig)
    detection: DetectionConfig = field(default_factory=DetectionConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    profit: ProfitConfig = field(default_factory=ProfitConfig)
    feeds: FeedsConfig = field(default_factory=FeedsConfig)
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    verifier: VerifierConfig = field(default_factory=VerifierConfig)
    state: StateConfig = field(default_factory=StateConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    notify: NotifyConfig = field(default_factory=NotifyConfig)
    origins: Mapping[str, str] = field(
        default_factory=lambda: MappingProxyType({}), repr=False, compare=False
    )

    def settings(self) -> dict[str, str]:
        """Every effective setting as display text, by dotted name; secrets redacted."""
        shown: dict[str, str] = {}
        for section in _SECTIONS:
            values = getattr(self, section)
            for item in fields(values):
                shown[f"{section}.{item.name}"] = _display(getattr(values, item.name))
        return shown

    def describe(self) -> str:
        """The effective settings on one line, for the startup log; secrets redacted."""
        return " ".join(f"{name}={value}" for name, value in self.settings().items())


def _display(value: object) -> str:
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple) and all(isinstance(item, SecretUrl) for item in value):
        return ",".join(str(item) for item in value) or "none"
    if isinstance(value, tuple):
        return ",".join(f"{symbol}:{address}" for symbol, address in value) or "none"
    return str(value)


# Values: each parser turns a raw value into the setting's type or raises ValueError.


@dataclass(frozen=True, slots=True)
class _Source:
    """Where raw values come from: a label for errors, string conversion, path base."""

    label: str
    textual: bool
    base: Path | None = None


Parser = Callable[[object, _Source], object]


def _type_name(value: object) -> str:
    return type(value).__name__


def _as_int(value: object, source: _Source) -> int:
    if isinstance(value, bool):  # bool is an int in Python, never in a config
        raise ValueError("expected an integer, got a boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and source.textual:
        try:
            return int(value.strip(), 10)
        except ValueError:
            raise ValueError(f"expected an integer, got {value!r}") from None
    raise ValueError(f"expected an integer, got {_type_name(value)} {value!r}")


def _integer(minimum: int, maximum: int | None = None) -> Parser:
    def parse(value: object, source: _Source) -> int:
        number = _as_int(value, source)
        if number < minimum or (maximum is not None and number > maximum):
            bound = f"at least {minimum}" if maximum is None else f"{minimum}..{maximum}"
            raise ValueError(f"{number} is out of range: must be {bound}")
        return number

    return parse


def _seconds(value: object, source: _Source) -> float:
    number = _number(value, source)
    if not math.isfinite(number) or number <= 0:
        raise ValueError(f"{number} is out of range: must be a positive number of seconds")
    return number


def _seconds_or_off(value: object, source: _Source) -> float:
    """A number of seconds, or 0 for off."""
    number = _number(value, source)
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"{number} is out of range: must be 0 (off) or a positive number")
    return number


def _number(value: object, source: _Source) -> float:
    if isinstance(value, bool):
        raise ValueError("expected a number of seconds, got a boolean")
    number: float
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str) and source.textual:
        try:
            number = float(value.strip())
        except ValueError:
            raise ValueError(f"expected a number of seconds, got {value!r}") from None
    else:
        raise ValueError(f"expected a number of seconds, got {_type_name(value)} {value!r}")
    return number


def _usd(value: object, source: _Source) -> Decimal:
    if isinstance(value, bool):
        raise ValueError("expected an amount in USD, got a boolean")
    try:
        if isinstance(value, int | float):
            amount = Decimal(str(value))  # str: 0.1 is "0.1", not its binary expansion
        elif isinstance(value, str) and source.textual:
            amount = Decimal(value.strip())
        else:
            raise ValueError(f"expected an amount in USD, got {_type_name(value)} {value!r}")
    except InvalidOperation:
        raise ValueError(f"expected an amount in USD, got {value!r}") from None
    if not amount.is_finite() or amount < 0:
        raise ValueError(f"{value} is out of range: must be a non-negative amount")
    return amount


_TRUE: Final = frozenset({"true", "1", "yes"})
_FALSE: Final = frozenset({"false", "0", "no"})


def _boolean(value: object, source: _Source) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and source.textual:
        word = value.strip().lower()
        if word in _TRUE | _FALSE:
            return word in _TRUE
        raise ValueError(f"expected true/false/1/0/yes/no, got {value!r}")
    raise ValueError(f"expected a boolean, got {_type_name(value)} {value!r}")


def _text(value: object, _source: _Source) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {_type_name(value)} {value!r}")
    return value


def _path(value: object, source: _Source) -> Path:
    if not isinstance(value, str | os.PathLike) or not str(value).strip():
        raise ValueError(f"expected a path, got {value!r}")
    path = Path(value).expanduser()
    if source.base is not None and not path.is_absolute():
        path = source.base / path  # relative to the file that names it
    return path


def _existing_file(value: object, source: _Source) -> Path:
    path = _path(value, source)
    if not path.is_file():
        raise ValueError(f"{path} is not an existing file")
    return path


def _existing_dir(value: object, source: _Source) -> Path:
    path = _path(value, source)
    if not path.is_dir():
        raise ValueError(f"{path} is not an existing directory (it is not created)")
    return path


_URL: Final = re.compile(r"^(https?|wss?)://[^/?#\s]+\S*$")


def _url(value: object, _source: _Source) -> SecretUrl:
    if not isinstance(value, str):
        raise ValueError(f"expected a URL, got {_type_name(value)}")
    text = value.strip()
    if not _URL.match(text):
        # The value may hold a key: show only what redact_url keeps.
        raise ValueError(f"{redact_url(text)} is not an http(s) or ws(s) URL")
    return SecretUrl(text)


def _urls(value: object, source: _Source) -> tuple[SecretUrl, ...]:
    """Several URLs: a TOML list, or one string separated by commas or spaces."""
    items = value.replace(",", " ").split() if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        raise ValueError(f"expected a list of URLs, got {_type_name(value)}")
    urls = tuple(_url(item, source) for item in items)
    if len({url.reveal() for url in urls}) != len(urls):
        raise ValueError("a URL is listed twice")
    return urls


_TCP: Final = re.compile(r"^tcp://(\*|\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$")
_ZMQ_OTHER: Final = re.compile(r"^(ipc|inproc)://\S+$")


def _zmq_endpoint(value: object, source: _Source) -> str:
    text = _text(value, source).strip()
    if _ZMQ_OTHER.match(text):
        return text
    match = _TCP.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not tcp://host:port, ipc://path or inproc://name")
    port = int(match.group(2))
    if not 1 <= port <= 65535:
        raise ValueError(f"port {port} is out of range: must be 1..65535")
    return text


def _zmq_mode(value: object, source: _Source) -> ZmqMode:
    text = _text(value, source).strip().lower()
    try:
        return ZmqMode(text)
    except ValueError:
        raise ValueError(f"expected push or pub, got {value!r}") from None


def _feeds(value: object, source: _Source) -> tuple[tuple[str, str], ...]:
    pairs: list[tuple[object, object]]
    if isinstance(value, Mapping):
        pairs = list(value.items())
    elif isinstance(value, str) and source.textual:
        entries = (entry.partition(":") for entry in value.split(",") if entry.strip())
        pairs = [(symbol, address) for symbol, _colon, address in entries]
    else:
        raise ValueError(f"expected SYM:0xaddress,... or a table, got {_type_name(value)}")
    feeds: dict[str, str] = {}
    for symbol, address in pairs:
        name = str(symbol).strip()
        if not name or name in feeds:
            raise ValueError(f"feed symbol {name!r} is empty or repeated")
        try:
            feeds[name] = normalize_address(str(address).strip())
        except ValueError:
            raise ValueError(f"feed {name}: {address!r} is not a 0x address") from None
    return tuple(feeds.items())


def _choice(*allowed: str) -> Parser:
    def parse(value: object, source: _Source) -> str:
        text = _text(value, source).strip()
        if text not in allowed:
            raise ValueError(f"expected one of {', '.join(allowed)}, got {text!r}")
        return text

    return parse


def _secret_text(value: object, _source: _Source) -> SecretText:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("expected a non-empty string")
    return SecretText(value.strip())


_PROMETHEUS_NAME: Final = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)?$")


def _metrics_prefix(value: object, source: _Source) -> str:
    text = _text(value, source).strip()
    if not _PROMETHEUS_NAME.match(text):
        raise ValueError(f"{text!r} is not a Prometheus metric name prefix")
    return text


# The settings.


@dataclass(frozen=True, slots=True)
class _Setting:
    """One setting: where it lives, how it is parsed, its other environment names."""

    section: str
    key: str
    parse: Parser
    env: tuple[str, ...] = ()
    secret: bool = False

    @property
    def name(self) -> str:
        return f"{self.section}.{self.key}"

    @property
    def env_names(self) -> tuple[str, ...]:
        return (*self.env, _generic_env(self.section, self.key))


def _generic_env(section: str, key: str) -> str:
    return f"OVERLORD__{section.upper()}__{key.upper()}"


_SETTINGS: Final = (
    _Setting("chain", "rpc_url", _url, ("OVERLORD_RPC_URL",), secret=True),
    _Setting("chain", "ws_url", _url, ("OVERLORD_WS_URL",), secret=True),
    _Setting("chain", "poll_interval_s", _seconds),
    _Setting("chain", "request_timeout_s", _seconds),
    _Setting("chain", "buckets", _integer(1, 1024)),
    _Setting("chain", "batch_size", _integer(1, 10_000)),
    _Setting("chain", "fallback_rpc_urls", _urls, ("OVERLORD_RPC_FALLBACK_URLS",), secret=True),
    _Setting("chain", "rpc_attempts", _integer(1, 20)),
    _Setting("chain", "rpc_rate_limit_per_s", _seconds_or_off),
    _Setting("users", "addresses_file", _existing_file, ("VEGA_ADDRESSES_FILE",)),
    _Setting("users", "backfill", _boolean),
    _Setting("users", "from_block", _integer(0)),
    _Setting("detection", "min_collateral_base", _integer(0)),
    _Setting("detection", "min_reportable_collateral_base", _integer(0)),
    _Setting("detection", "reannounce_interval_s", _seconds),
    _Setting("output", "zmq_endpoint", _zmq_endpoint),
    _Setting("output", "zmq_mode", _zmq_mode),
    _Setting("output", "zmq_topic", _text),
    _Setting("output", "data_dir", _path),
    _Setting("output", "temp_output_dir", _existing_dir, ("TEMP_OUTPUT_DIR",)),
    _Setting("output", "log_json", _boolean),
    _Setting("profit", "fee_bps", _integer(0, 10_000), ("PROFIT_FEE_BPS",)),
    _Setting("profit", "min_usd", _usd, ("PROFIT_MIN_USD",)),
    _Setting("profit", "gas_cost_usd", _usd, ("GAS_COST_USD",)),
    _Setting(
        "feeds", "chainlink_addresses_file", _existing_file, ("VEGA_CHAINLINK_ADDRESSES_FILE",)
    ),
    _Setting("feeds", "chainlink_rpc_url", _url, ("CHAINLINK_RPC_URL",), secret=True),
    _Setting("feeds", "chainlink_feeds", _feeds, ("CHAINLINK_FEEDS",)),
    _Setting("tracker", "poll_limit", _integer(1, 1000), ("POLL_LIMIT",)),
    _Setting("tracker", "ignore_bootstrap_batch", _boolean, ("IGNORE_BOOTSTRAP_BATCH",)),
    _Setting("tracker", "subgraph_debug_errors", _boolean, ("SUBGRAPH_DEBUG_ERRORS",)),
    _Setting("tracker", "enabled", _boolean),
    _Setting("tracker", "source", _choice("logs", "subgraph")),
    _Setting("tracker", "poll_interval_s", _seconds),
    _Setting("tracker", "subgraph_url", _url, ("SUBGRAPH_URL",), secret=True),
    _Setting("tracker", "subgraph_api_key", _secret_text, ("GRAPH_API_KEY",), secret=True),
    _Setting("tracker", "confirmations", _integer(0, 1000)),
    _Setting("tracker", "from_block", _integer(0)),
    _Setting("tracker", "on_demand_health_factor", _boolean),
    _Setting("verifier", "sample_users_per_block", _integer(0, 10_000)),
    _Setting("verifier", "tolerance_wad", _integer(0)),
    _Setting("state", "enabled", _boolean),
    _Setting("state", "reconcile_interval_s", _seconds_or_off),
    _Setting("state", "watch_addresses_s", _seconds_or_off),
    _Setting("state", "restart_verify_users", _integer(0, 100_000)),
    _Setting("http", "enabled", _boolean),
    _Setting("http", "host", _text),
    _Setting("http", "port", _integer(0, 65_535), ("METRICS_PORT",)),
    _Setting("http", "metrics_prefix", _metrics_prefix),
    _Setting("notify", "webhook_url", _url, ("OVERLORD_WEBHOOK_URL",), secret=True),
    _Setting("output", "liquidations_endpoint", _zmq_endpoint),
)


def _market_ref(key: str) -> Parser:
    """The parser of one spelling of the market, ``chain.<key>``."""

    def parse(value: object, source: _Source) -> MarketRef:
        if key == "manifest":
            return MarketRef(manifest=_existing_file(value, source))
        if key == "pool_addresses_provider":
            return MarketRef(provider=_text(value, source))
        if key == "preset":
            return MarketRef(preset=_text(value, source))
        text = str(value) if isinstance(value, os.PathLike) else _text(value, source)
        ref = MarketRef.parse(text)
        if ref.manifest is not None:  # checked now, and relative to the file that names it
            return MarketRef(manifest=_existing_file(text, source))
        return ref

    return parse


_MARKET_PARSERS: Final[Mapping[str, Parser]] = MappingProxyType(
    {
        f"chain.{key}": _market_ref(key)
        for key in ("market", "manifest", "pool_addresses_provider", "preset")
    }
)
_BY_NAME: Final = MappingProxyType({setting.name: setting for setting in _SETTINGS})
SETTING_NAMES: Final = (*_BY_NAME, *_MARKET_PARSERS)
"""Every dotted name a file, the environment or a flag may set."""
ENV_NAMES: Final[Mapping[str, tuple[str, ...]]] = MappingProxyType(
    {
        **{setting.name: setting.env_names for setting in _SETTINGS},
        **{name: (_generic_env(*name.split(".")),) for name in _MARKET_PARSERS},
    }
)
"""The environment variables of each setting (prior names first)."""


def _suggestion(name: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    return f" (did you mean {close[0]}?)" if close else ""


# The sources.

_Values = dict[str, tuple[object, _Source]]


def _file_values(path: Path) -> _Values:
    label = f"file {path}"
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except OSError as exc:
        raise ConfigError("config", label, f"cannot read it: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("config", label, f"not valid TOML: {exc}") from None
    source = _Source(label, textual=False, base=path.parent)
    values: _Values = {}
    for section, table in data.items():
        if section not in _SECTIONS or not isinstance(table, dict):
            known = ", ".join(f"[{name}]" for name in _SECTIONS)
            raise ConfigError(section, label, f"not a known section; sections are {known}")
        for key, value in table.items():
            name = f"{section}.{key}"
            _check_file_key(name, label)
            values[name] = (value, source)
    return values


def _check_file_key(name: str, label: str) -> None:
    setting = _BY_NAME.get(name)
    if setting is not None and setting.secret:
        raise ConfigError(
            name,
            label,
            "secrets are never read from the file (files get committed, copied and shared): "
            f"set {setting.env_names[0]} or pass it as a flag",
        )
    if setting is None and name not in _MARKET_PARSERS:
        raise ConfigError(name, label, "unknown setting" + _suggestion(name, SETTING_NAMES))


def _env_values(env: Mapping[str, str]) -> _Values:
    values: _Values = {}
    for name, env_names in ENV_NAMES.items():
        given = [variable for variable in env_names if env.get(variable, "").strip()]
        if not given:
            continue
        if len({env[variable] for variable in given}) > 1:
            raise ConfigError(
                name, f"env {given[0]}", f"{given[1]} is set to something else: unset one"
            )
        values[name] = (env[given[0]], _Source(f"env {given[0]}", textual=True))
    known = {variable for names in ENV_NAMES.values() for variable in names}
    for variable in env:
        if variable.startswith("OVERLORD__") and variable not in known:
            raise ConfigError(
                variable,
                f"env {variable}",
                "names no setting" + _suggestion(variable, sorted(known)),
            )
    return values


def _flag_values(flags: Mapping[str, object]) -> _Values:
    values: _Values = {}
    for name, value in flags.items():
        if name not in _BY_NAME and name not in _MARKET_PARSERS:
            raise ConfigError(name, f"flag {name}", "unknown setting")
        if value is not None:
            values[name] = (value, _Source(f"flag {name}", textual=True))
    return values


def _merge(layers: Sequence[_Values]) -> _Values:
    """Later layers win; the market spellings of a layer replace all lower ones."""
    merged: _Values = {}
    for layer in layers:
        market = [name for name in _MARKET_PARSERS if name in layer]
        if len(market) > 1:
            first, second = market[0], market[1]
            raise ConfigError(
                first,
                layer[first][1].label,
                f"{first} and {second} ({layer[second][1].label}) are mutually exclusive: "
                "give the market once",
            )
        if market:
            for name in _MARKET_PARSERS:
                merged.pop(name, None)
        merged.update(layer)
    return merged


# Loading.


def _parse(parser: Parser, name: str, raw: object, source: _Source) -> object:
    try:
        return parser(raw, source)
    except ValueError as exc:
        raise ConfigError(name, source.label, str(exc)) from None


def _sections(merged: _Values) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    values: dict[str, dict[str, Any]] = {section: {} for section in _SECTIONS}
    origins = {name: "default" for name in ENV_NAMES if name not in _MARKET_PARSERS}
    origins["chain.market"] = "default"
    for name, (raw, source) in merged.items():
        if name in _MARKET_PARSERS:
            values["chain"]["market"] = _parse(_MARKET_PARSERS[name], name, raw, source)
            origins["chain.market"] = source.label
            continue
        setting = _BY_NAME[name]
        values[setting.section][setting.key] = _parse(setting.parse, name, raw, source)
        origins[name] = source.label
    return values, origins


def _check(config: Config) -> None:
    """Rules that tie settings together."""
    origins = config.origins
    detection = config.detection
    if detection.min_reportable_collateral_base < detection.min_collateral_base:
        name = "detection.min_reportable_collateral_base"
        raise ConfigError(
            name,
            origins[name],
            "is below detection.min_collateral_base: nothing in between could ever be reported",
        )
    if config.output.zmq_topic is not None and config.output.zmq_mode is not ZmqMode.PUB:
        name = "output.zmq_topic"
        raise ConfigError(name, origins[name], "a topic needs output.zmq_mode = pub")
    market = config.chain.market
    if market is not None and market.manifest is None and config.chain.rpc_url is None:
        raise ConfigError(
            "chain.market",
            origins["chain.market"],
            f"{market} needs a node: set OVERLORD_RPC_URL or pass --rpc-url "
            "(only the embedded local chain runs without one)",
        )


def load_config(
    toml_path: Path | None,
    env: Mapping[str, str],
    flags: Mapping[str, object] | None = None,
) -> Config:
    """Load and validate the configuration: defaults < file < environment < flags.

    Args:
        toml_path: the ``--config`` file, or ``None`` for none.
        env: the environment, usually ``os.environ``.
        flags: ``{dotted name: value}`` of the flags given on the command line; ``None``
            values count as not given.

    Raises:
        ConfigError: a setting is unknown, malformed, out of range or in conflict; the
            error names the setting and its source.
    """
    layers = [_file_values(toml_path)] if toml_path is not None else []
    layers += [_env_values(env), _flag_values(flags or {})]
    values, origins = _sections(_merge(layers))
    sections: dict[str, Any] = {name: cls(**values[name]) for name, cls in _SECTIONS.items()}
    config = Config(
        **sections,
        origins=MappingProxyType(origins),
    )
    _check(config)
    return config


__all__ = [
    "ENV_NAMES",
    "SETTING_NAMES",
    "ChainConfig",
    "Config",
    "ConfigError",
    "DetectionConfig",
    "FeedsConfig",
    "OutputConfig",
    "ProfitConfig",
    "SecretUrl",
    "StateConfig",
    "TrackerConfig",
    "UsersConfig",
    "ZmqMode",
    "load_config",
]
