"""Every metric is exposed under its name and type, with or without a prefix."""

from __future__ import annotations

import pytest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from overlord.observability.metrics import Metrics

# family name (as the text parser reports it, without the prefix) -> (type, label names)
EXPECTED: dict[str, tuple[str, frozenset[str]]] = {
    "liquidation_new_events": ("counter", frozenset()),
    "liquidation_snapshot_size": ("gauge", frozenset()),
    "liquidation_seen_total": ("gauge", frozenset()),
    "liquidation_missed": ("counter", frozenset({"reason"})),
    "tracker_poll_errors": ("counter", frozenset({"source"})),
    "head_block": ("gauge", frozenset()),
    "head_lag_seconds": ("gauge", frozenset()),
    "rescreen_duration_seconds": ("histogram", frozenset()),
    "users": ("gauge", frozenset()),
    "underwater_users": ("gauge", frozenset()),
    "events_published": ("counter", frozenset({"kind"})),
    "verifier_checks": ("counter", frozenset()),
    "verifier_mismatches": ("counter", frozenset()),
    "price_fallbacks": ("counter", frozenset({"layer"})),
    "sink_failures": ("counter", frozenset({"sink"})),
    "sink_dropped": ("counter", frozenset({"sink"})),
    "rpc_requests": ("counter", frozenset({"method"})),
    "rpc_errors": ("counter", frozenset({"method"})),
}


def families(metrics: Metrics) -> dict[str, Metric]:
    text = metrics.exposition().decode()
    return {family.name: family for family in text_string_to_metric_families(text)}


def use_everything(metrics: Metrics) -> None:
    metrics.liquidation_new_events.inc(3)
    metrics.liquidation_snapshot_size.set(120)
    metrics.liquidation_seen_total.set(118)
    metrics.liquidation_missed.labels(reason="not_tracked").inc()
    metrics.tracker_poll_errors.labels(source="subgraph").inc(2)
    metrics.head_block.set(21_000_000)
    metrics.head_lag_seconds.set(1.5)
    metrics.rescreen_duration_seconds.observe(0.0003)
    metrics.users.set(40_000)
    metrics.underwater_users.set(7)
    metrics.events_published.labels(kind="mined").inc(5)
    metrics.verifier_checks.inc(10)
    metrics.verifier_mismatches.inc()
    metrics.price_fallbacks.labels(layer="aggregator").inc()
    metrics.sink_failures.labels(sink="webhook").inc()
    metrics.sink_dropped.labels(sink="webhook").inc(4)
    metrics.add_rpc_source(lambda: {"eth_call": (10, 1)})


def sample(family: Metric, suffix: str = "", **labels: str) -> float:
    wanted = family.name + suffix
    for s in family.samples:
        if s.name == wanted and s.labels == labels:
            return s.value
    raise AssertionError(f"no sample {wanted}{labels} in {family.samples}")


@pytest.mark.parametrize("prefix", ["", "overlord_"])
def test_every_metric_is_exposed_with_its_type_and_labels(prefix: str) -> None:
    metrics = Metrics(prefix)
    use_everything(metrics)
    found = families(metrics)
    for name, (kind, labels) in EXPECTED.items():
        family = found.get(prefix + name)
        assert family is not None, f"{prefix + name} missing from the exposition"
        assert family.type == kind, name
        series = [s for s in family.samples if not s.name.endswith("_created")]
        assert series, name
        for s in series:
            assert set(s.labels) - {"le"} == labels, (name, s.labels)
    assert not prefix or all(name.startswith(prefix) for name in found)


@pytest.mark.parametrize("prefix", ["", "overlord_"])
def test_values_and_exposed_names(prefix: str) -> None:
    metrics = Metrics(prefix)
    use_everything(metrics)
    found = families(metrics)
    text = metrics.exposition().decode()
    assert f"\n{prefix}liquidation_new_events_total 3.0\n" in text
    assert f"\n{prefix}liquidation_seen_total 118.0\n" in text
    assert sample(found[prefix + "liquidation_missed"], "_total", reason="not_tracked") == 1
    assert sample(found[prefix + "tracker_poll_errors"], "_total", source="subgraph") == 2
    assert sample(found[prefix + "head_block"]) == 21_000_000
    assert sample(found[prefix + "events_published"], "_total", kind="mined") == 5
    assert sample(found[prefix + "sink_dropped"], "_total", sink="webhook") == 4
    histogram = found[prefix + "rescreen_duration_seconds"]
    assert sample(histogram, "_count") == 1
    assert sample(histogram, "_bucket", le="0.0005") == 1
    assert sample(histogram, "_bucket", le="0.0001") == 0
    assert sample(histogram, "_bucket", le="5.0") == 1


def test_rescreen_buckets_span_a_tenth_of_a_millisecond_to_five_seconds() -> None:
    histogram = families(Metrics())["rescreen_duration_seconds"]
    bounds = [float(s.labels["le"]) for s in histogram.samples if s.name.endswith("_bucket")]
    assert bounds[0] == 0.0001
    assert bounds[-2] == 5.0
    assert bounds[-1] == float("inf")


def test_both_event_kinds_are_exposed_before_any_event() -> None:
    family = families(Metrics())["events_published"]
    assert sample(family, "_total", kind="mined") == 0
    assert sample(family, "_total", kind="pending") == 0


def test_the_rpc_collector_reads_its_source_at_every_scrape() -> None:
    metrics = Metrics("overlord_")
    counts = {"eth_call": (10, 1), "eth_getLogs": (3, 0)}
    metrics.add_rpc_source(lambda: counts)
    found = families(metrics)
    requests, errors = found["overlord_rpc_requests"], found["overlord_rpc_errors"]
    assert requests.type == errors.type == "counter"
    assert sample(requests, "_total", method="eth_call") == 10
    assert sample(errors, "_total", method="eth_call") == 1
    assert sample(requests, "_total", method="eth_getLogs") == 3

    counts["eth_call"] = (25, 4)
    counts["eth_blockNumber"] = (1, 0)
    found = families(metrics)
    assert sample(found["overlord_rpc_requests"], "_total", method="eth_call") == 25
    assert sample(found["overlord_rpc_errors"], "_total", method="eth_call") == 4
    assert sample(found["overlord_rpc_requests"], "_total", method="eth_blockNumber") == 1


def test_a_raising_rpc_source_does_not_break_the_scrape() -> None:
    metrics = Metrics()

    def broken() -> dict[str, tuple[int, int]]:
        raise RuntimeError("stats unavailable")

    metrics.add_rpc_source(broken)
    metrics.head_block.set(7)
    found = families(metrics)
    assert sample(found["head_block"]) == 7
    assert not found["rpc_requests"].samples


def test_a_second_rpc_source_is_refused() -> None:
    metrics = Metrics()
    metrics.add_rpc_source(dict)
    with pytest.raises(ValueError, match="rpc_requests"):
        metrics.add_rpc_source(dict)


@pytest.mark.parametrize("prefix", ["9overlord_", "over-lord_", "overlord ", "é_"])
def test_a_bad_prefix_is_named_in_the_error(prefix: str) -> None:
    with pytest.raises(ValueError, match="prefix") as caught:
        Metrics(prefix)
    assert repr(prefix) in str(caught.value)


def test_two_instances_do_not_collide() -> None:
    first, second = Metrics(), Metrics()
    first.head_block.set(1)
    second.head_block.set(2)
    first.add_rpc_source(lambda: {"eth_call": (1, 0)})
    second.add_rpc_source(lambda: {"eth_call": (2, 0)})
    assert sample(families(first)["head_block"]) == 1
    assert sample(families(second)["head_block"]) == 2
    assert sample(families(second)["rpc_requests"], "_total", method="eth_call") == 2
