"""The liquidation tracker: who was liquidated, whether we saw it coming, and why not."""
