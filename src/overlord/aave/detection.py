"""Protocol version detection: the pure decision (spec: docs/aave-v3-math.md §0).

The chain side reads ``POOL_REVISION()`` from the Pool proxy and probes getters that exist
only from some version on; this module turns those answers into a
:class:`~overlord.aave.versions.ProtocolVersion`, or refuses with the reason.

Revisions of ``aave-v3-origin`` instances are unambiguous (4 = 3.1, 5 and 6 = 3.2, 7 = 3.3,
8 = 3.4, 9 = 3.5, 10 = 3.6, 11 = 3.7). Pools built from the older ``aave-v3-core`` report
small numbers (1 to 3) that do not tell 3.0.0, 3.0.1 and 3.0.2 apart, and no getter does;
those default to 3.0.2, whose math 3.0.1 shares, unless the caller knows better.
"""

from __future__ import annotations

from dataclasses import dataclass

from overlord.aave.versions import ProtocolVersion

_ORIGIN_REVISIONS: dict[int, ProtocolVersion] = {
    4: ProtocolVersion.V3_1,
    5: ProtocolVersion.V3_2,
    6: ProtocolVersion.V3_2,
    7: ProtocolVersion.V3_3,
    8: ProtocolVersion.V3_4,
    9: ProtocolVersion.V3_5,
    10: ProtocolVersion.V3_6,
}
_LEGACY_REVISIONS = range(1, 4)


class VersionDetectionError(ValueError):
    """The revision and the probes do not identify a supported version."""


@dataclass(frozen=True, slots=True)
class VersionProbes:
    """Answers read from the Pool: its revision and whether version-specific getters exist."""

    pool_revision: int
    has_liquidation_grace_period: bool = False  # getLiquidationGracePeriod, 3.1+
    has_emode_collateral_bitmap: bool = False  # getEModeCategoryCollateralBitmap, 3.2+
    has_reserve_deficit: bool = False  # getReserveDeficit, 3.3+
    has_interest_rate_strategy: bool = False  # RESERVE_INTEREST_RATE_STRATEGY(), 3.4+
    has_emode_ltvzero_bitmap: bool = False  # getEModeCategoryLtvzeroBitmap, 3.6+
    has_isolated_emodes: bool = False  # getIsEModeCategoryIsolated, 3.7+


def _probed_floor(probes: VersionProbes) -> str:
    """The newest version whose getters the probes found, as ``"3.x"``."""
    levels = (
        (probes.has_isolated_emodes, "3.7"),
        (probes.has_emode_ltvzero_bitmap, "3.6"),
        (probes.has_interest_rate_strategy, "3.4"),
        (probes.has_reserve_deficit, "3.3"),
        (probes.has_emode_collateral_bitmap, "3.2"),
        (probes.has_liquidation_grace_period, "3.1"),
    )
    return next((level for found, level in levels if found), "3.0")


def _family(version: ProtocolVersion) -> str:
    """The probe level a version shows: 3.5 has no getter of its own and looks like 3.4."""
    text = version.value[:3]
    return "3.4" if text == "3.5" else text


def detect_protocol_version(
    probes: VersionProbes, legacy_default: ProtocolVersion = ProtocolVersion.V3_0_2
) -> ProtocolVersion:
    """Decide the protocol version from ``POOL_REVISION`` and the getter probes.

    Raises:
        VersionDetectionError: 3.7 or newer, an unknown revision, or probes that contradict
            the revision (for example a proxy upgraded halfway).
    """
    floor = _probed_floor(probes)
    if floor == "3.7" or probes.pool_revision == 11:
        raise VersionDetectionError(
            f"protocol 3.7 (POOL_REVISION {probes.pool_revision}) is not supported yet"
        )
    if probes.pool_revision in _LEGACY_REVISIONS:
        version = legacy_default
    elif probes.pool_revision in _ORIGIN_REVISIONS:
        version = _ORIGIN_REVISIONS[probes.pool_revision]
    else:
        raise VersionDetectionError(f"unknown POOL_REVISION {probes.pool_revision}")
    if _family(version) != floor:
        raise VersionDetectionError(
            f"POOL_REVISION {probes.pool_revision} means {version.value}, "
            f"but the getters found match {floor}"
        )
    return version
