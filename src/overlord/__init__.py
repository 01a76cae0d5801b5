"""Overlord: exact Aave v3 health factors and liquidation plans for every borrower."""

__version__ = "0.1.0"
