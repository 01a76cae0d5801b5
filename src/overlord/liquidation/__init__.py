"""Liquidation economics: what a liquidation is worth to the liquidator, in USD."""
