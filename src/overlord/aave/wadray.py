"""WadRayMath, PercentageMath and MathUtils.mulDivCeil, exactly as the Aave v3 contracts.

Mirrors ``protocol/libraries/math/WadRayMath.sol``, ``PercentageMath.sol`` and
``MathUtils.sol`` (spec: docs/aave-v3-math.md §1). Every function takes and returns
non-negative Python ints that stand for uint256 values. Where the Solidity assembly reverts,
because the intermediate product (plus the rounding half) would exceed ``2**256 - 1`` or a
divisor is zero, these raise :class:`Uint256Overflow` or :class:`DivisionByZero`.

Half-up variants exist in every protocol version. The explicit floor/ceil variants were added
in 3.5; ``percent_div_floor`` is 3.7 only and deliberately absent. Which variant a
computation uses is decided by the version rules (``overlord.aave.versions``), never here.
"""

from __future__ import annotations

from overlord.aave.errors import DivisionByZero, Uint256Overflow

UINT256_MAX = 2**256 - 1

WAD = 10**18
HALF_WAD = WAD // 2
RAY = 10**27
HALF_RAY = RAY // 2
WAD_RAY_RATIO = 10**9

PERCENTAGE_FACTOR = 10_000
HALF_PERCENTAGE_FACTOR = PERCENTAGE_FACTOR // 2


def checked(value: int) -> int:
    """Return ``value`` if it fits in a uint256, else raise :class:`Uint256Overflow`."""
    if value > UINT256_MAX:
        raise Uint256Overflow(f"{value} exceeds 2**256 - 1")
    return value


def _nonzero(divisor: int) -> int:
    if divisor == 0:
        raise DivisionByZero("division by zero")
    return divisor


def _ceil_div(numerator: int, divisor: int) -> int:
    return -(-numerator // divisor)


# WadRayMath, half-up (all versions).


def wad_mul(a: int, b: int) -> int:
    """``(a*b + HALF_WAD) // WAD``."""
    return checked(a * b + HALF_WAD) // WAD


def wad_div(a: int, b: int) -> int:
    """``(a*WAD + b//2) // b``."""
    return checked(a * WAD + _nonzero(b) // 2) // b


def ray_mul(a: int, b: int) -> int:
    """``(a*b + HALF_RAY) // RAY``."""
    return checked(a * b + HALF_RAY) // RAY


def ray_div(a: int, b: int) -> int:
    """``(a*RAY + b//2) // b``."""
    return checked(a * RAY + _nonzero(b) // 2) // b


def ray_to_wad(a: int) -> int:
    """Ray to wad, rounding half up."""
    quotient, remainder = divmod(a, WAD_RAY_RATIO)
    return quotient + (1 if remainder >= WAD_RAY_RATIO // 2 else 0)


def wad_to_ray(a: int) -> int:
    """Wad to ray (exact; reverts on overflow)."""
    return checked(a * WAD_RAY_RATIO)


# WadRayMath, explicit direction (3.5+).


def ray_mul_floor(a: int, b: int) -> int:
    """``a*b // RAY``."""
    return checked(a * b) // RAY


def ray_mul_ceil(a: int, b: int) -> int:
    """``a*b / RAY`` rounded up."""
    return _ceil_div(checked(a * b), RAY)


def ray_div_floor(a: int, b: int) -> int:
    """``a*RAY // b``."""
    return checked(a * RAY) // _nonzero(b)


def ray_div_ceil(a: int, b: int) -> int:
    """``a*RAY / b`` rounded up."""
    return _ceil_div(checked(a * RAY), _nonzero(b))


# PercentageMath (half-up in all versions; floor/ceil 3.5+).


def percent_mul(value: int, percentage: int) -> int:
    """``(value*percentage + 5000) // 10000``."""
    return checked(value * percentage + HALF_PERCENTAGE_FACTOR) // PERCENTAGE_FACTOR


def percent_div(value: int, percentage: int) -> int:
    """``(value*10000 + percentage//2) // percentage``."""
    return checked(value * PERCENTAGE_FACTOR + _nonzero(percentage) // 2) // percentage


def percent_mul_floor(value: int, percentage: int) -> int:
    """``value*percentage // 10000`` (3.5+)."""
    return checked(value * percentage) // PERCENTAGE_FACTOR


def percent_mul_ceil(value: int, percentage: int) -> int:
    """``value*percentage / 10000`` rounded up (3.5+)."""
    return _ceil_div(checked(value * percentage), PERCENTAGE_FACTOR)


def percent_div_ceil(value: int, percentage: int) -> int:
    """``value*10000 / percentage`` rounded up (3.5+)."""
    return _ceil_div(checked(value * PERCENTAGE_FACTOR), _nonzero(percentage))


# MathUtils (3.5+).


def mul_div_ceil(a: int, b: int, c: int) -> int:
    """``a*b / c`` rounded up; reverts when ``c`` is 0 or ``a*b`` overflows."""
    _nonzero(c)
    return _ceil_div(checked(a * b), c)


def mul_div_floor(a: int, b: int, c: int) -> int:
    """``a*b // c`` with checked multiplication, the plain Solidity ``a * b / c``."""
    _nonzero(c)
    return checked(a * b) // c
