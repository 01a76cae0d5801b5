"""Protocol version detection and parsing (spec docs/aave-v3-math.md §0)."""

from __future__ import annotations

import pytest

from overlord.aave.detection import VersionDetectionError, VersionProbes, detect_protocol_version
from overlord.aave.versions import ProtocolVersion, rules_for

V = ProtocolVersion


def probes_up_to(level: str, revision: int) -> VersionProbes:
    """The probes a Pool of ``level`` answers: every getter added up to that version."""
    order = ("3.1", "3.2", "3.3", "3.4", "3.6", "3.7")
    reached = {name for name in order if name <= level}
    return VersionProbes(
        pool_revision=revision,
        has_liquidation_grace_period="3.1" in reached,
        has_emode_collateral_bitmap="3.2" in reached,
        has_reserve_deficit="3.3" in reached,
        has_interest_rate_strategy="3.4" in reached,
        has_emode_ltvzero_bitmap="3.6" in reached,
        has_isolated_emodes="3.7" in reached,
    )


@pytest.mark.parametrize(
    ("revision", "probe_level", "expected"),
    [
        (4, "3.1", V.V3_1),
        (5, "3.2", V.V3_2),
        (6, "3.2", V.V3_2),
        (7, "3.3", V.V3_3),
        (8, "3.4", V.V3_4),
        (9, "3.5", V.V3_5),
        (10, "3.6", V.V3_6),
    ],
)
def test_every_origin_revision_with_matching_probes_is_detected(
    revision: int, probe_level: str, expected: ProtocolVersion
) -> None:
    assert detect_protocol_version(probes_up_to(probe_level, revision)) is expected


def test_3_5_and_3_4_have_the_same_getters_and_differ_only_by_revision() -> None:
    probes_34 = probes_up_to("3.4", 8)
    probes_35 = probes_up_to("3.5", 9)

    assert probes_34.has_interest_rate_strategy
    assert probes_35.has_interest_rate_strategy
    assert not probes_35.has_emode_ltvzero_bitmap
    assert detect_protocol_version(probes_34) is V.V3_4
    assert detect_protocol_version(probes_35) is V.V3_5


@pytest.mark.parametrize("revision", [1, 2, 3])
def test_legacy_revisions_default_to_3_0_2(revision: int) -> None:
    assert detect_protocol_version(VersionProbes(pool_revision=revision)) is V.V3_0_2


@pytest.mark.parametrize("legacy_default", [V.V3_0_0, V.V3_0_1, V.V3_0_2])
@pytest.mark.parametrize("revision", [1, 2, 3])
def test_legacy_revisions_honour_the_caller_default(
    revision: int, legacy_default: ProtocolVersion
) -> None:
    probes = VersionProbes(pool_revision=revision)

    assert detect_protocol_version(probes, legacy_default=legacy_default) is legacy_default


def test_revision_11_is_3_7_and_rejected() -> None:
    with pytest.raises(VersionDetectionError, match=r"3\.7"):
        detect_protocol_version(probes_up_to("3.7", 11))


@pytest.mark.parametrize("revision", [1, 8, 9, 10, 11])
def test_an_isolated_emode_getter_means_3_7_whatever_the_revision(revision: int) -> None:
    probes = VersionProbes(pool_revision=revision, has_isolated_emodes=True)

    with pytest.raises(VersionDetectionError, match=r"3\.7"):
        detect_protocol_version(probes)


def test_revision_11_is_rejected_even_with_older_probes() -> None:
    with pytest.raises(VersionDetectionError, match="not supported"):
        detect_protocol_version(probes_up_to("3.6", 11))


@pytest.mark.parametrize("revision", [0, 12, 255, -1])
def test_an_unknown_revision_is_rejected(revision: int) -> None:
    with pytest.raises(VersionDetectionError, match="unknown POOL_REVISION"):
        detect_protocol_version(VersionProbes(pool_revision=revision))


@pytest.mark.parametrize(
    ("revision", "probe_level"),
    [
        (10, "3.4"),  # 3.6 revision without the ltv-zero getter
        (8, "3.6"),  # 3.4 revision with the 3.6 getter
        (9, "3.3"),
        (7, "3.2"),
        (5, "3.1"),
        (4, "3.0"),
        (1, "3.1"),  # a legacy revision with a 3.1 getter
    ],
)
def test_probes_that_contradict_the_revision_are_rejected(revision: int, probe_level: str) -> None:
    with pytest.raises(VersionDetectionError, match="getters found match"):
        detect_protocol_version(probes_up_to(probe_level, revision))


def test_detection_error_is_a_value_error() -> None:
    assert issubclass(VersionDetectionError, ValueError)


# ProtocolVersion.parse


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("3.6", V.V3_6),
        ("3.6.0", V.V3_6),
        ("v3.6.0", V.V3_6),
        ("v3.0.2", V.V3_0_2),
        ("3.0.2", V.V3_0_2),
        ("3.0.0", V.V3_0_0),
        ("3.0.1", V.V3_0_1),
        ("3.1", V.V3_1),
        ("3.1.0", V.V3_1),
        (" V3.4 ", V.V3_4),
        ("3.5.0", V.V3_5),
    ],
)
def test_parse_accepts_the_usual_spellings(text: str, expected: ProtocolVersion) -> None:
    assert ProtocolVersion.parse(text) is expected


@pytest.mark.parametrize("text", ["", "garbage", "3", "3.0", "3.7", "3.7.0", "4.0", "3.6.1", "v"])
def test_parse_rejects_garbage_and_unsupported_versions(text: str) -> None:
    with pytest.raises(ValueError, match="unsupported protocol version"):
        ProtocolVersion.parse(text)


def test_every_version_has_rules_naming_it() -> None:
    for version in ProtocolVersion:
        assert rules_for(version).version is version
