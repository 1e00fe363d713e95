"""The three quantitative maps the app handles, in the order every stacked array holds them:
proton density (PD, water fraction or arbitrary units), T1 and T2 (seconds, as BIDS), and
:class:`Maps`, the one shape they travel in between the participant steps."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

MAP_ORDER: tuple[str, ...] = ("PD", "T1", "T2")
#: The units of the maps inside the app (the derivatives rescale PD to the input's scale).
UNITS: Mapping[str, str] = {"PD": "water fraction (water = 1)", "T1": "s", "T2": "s"}


@dataclass(frozen=True, eq=False)
class Maps:
    """PD, T1 and T2 on one grid: ``data`` (3, X, Y, Z) float32 in :data:`MAP_ORDER` and
    :data:`UNITS`, its NIfTI ``affine`` (mm), the maps that were ``acquired`` (the others
    are estimates for the physics terms, never measurements) and their ``units``."""

    data: np.ndarray
    affine: np.ndarray
    acquired: tuple[str, ...] = MAP_ORDER
    units: Mapping[str, str] = field(default_factory=lambda: dict(UNITS))

    def __getitem__(self, name: str) -> np.ndarray:
        """One map by name (PD, T1 or T2)."""
        return self.data[MAP_ORDER.index(name)]

    def as_dict(self) -> dict[str, np.ndarray]:
        """Map name -> (X, Y, Z) array (views of ``data``)."""
        return dict(zip(MAP_ORDER, self.data, strict=True))

    @property
    def shape(self) -> tuple[int, ...]:
        """The grid's shape (X, Y, Z)."""
        return tuple(self.data.shape[1:])
