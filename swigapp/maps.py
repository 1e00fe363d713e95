"""The three quantitative maps the app handles, in the order every stacked array holds them:
proton density (PD, water fraction or arbitrary units), T1 and T2 (seconds, as BIDS)."""

from __future__ import annotations

MAP_ORDER: tuple[str, ...] = ("PD", "T1", "T2")
