"""Fitting qMRI maps from raw series (BIDS qMRI file collections), one module per series.

Each module fits one kind of series voxel by voxel, vectorised over voxels, and returns a
:class:`Fit`. Times are in seconds (as BIDS), angles in degrees at the interfaces, M0 in the
series' own (scanner) units: the app's input conditioning turns it into a water fraction.

=========  =====================================  ===========================================
series     maps                                   model
=========  =====================================  ===========================================
MESE       T2, M0                                 EPG of the CPMG echo train with a fitted
                                                  refocusing efficiency (B1), :mod:`.mese`
IRT1       T1, M0 (and the inversion efficiency)  |a + b exp(-TI/T1)| with polarity
                                                  restoration, :mod:`.irt1`
VFA        T1, M0                                 spoiled gradient echo, B1 from a TB1map
                                                  when given, :mod:`.vfa`
MP2RAGE    T1 (and M0 with the second inversion)  the MP2RAGE lookup table, :mod:`.mp2rage`
=========  =====================================  ===========================================

Voxels a fit cannot explain (no signal, a non-finite sample, an estimate outside its
physical range) are NaN in every map: they then travel the imperfect-input path of
:mod:`swigapp.inputs.qmri` like a fitting tool's failures.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: Where each fitted relaxation time is believed (s): estimates outside are fit failures.
T1_RANGE = (0.05, 6.0)
T2_RANGE = (0.005, 3.0)


@dataclass
class Fit:
    """The maps fitted from one raw series.

    ``maps``: "T1"/"T2" (s), "M0" (series units) and any extra parameter map; ``residual``:
    root-mean-square residual of the fit per voxel, in series units; ``model``: one
    sentence for the sidecars (which signal model, what was fitted, what was assumed);
    ``notes``: caveats a user must read (e.g. "T1 is not corrected for B1").
    """

    maps: dict[str, np.ndarray]
    residual: np.ndarray
    model: str
    notes: list[str] = field(default_factory=list)
    parameters: dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> int:
        """Voxels where the fit failed (NaN in the maps)."""
        first = next(iter(self.maps.values()))
        return int(np.count_nonzero(~np.isfinite(first)))


def as_series(data: np.ndarray, n: int, what: str) -> tuple[np.ndarray, tuple[int, ...]]:
    """A series stacked on its last axis (..., n) as (voxels, n) float64, and the voxel shape;
    ValueError when the last axis does not hold ``n`` measurements."""
    data = np.asarray(data, dtype=np.float64)
    if data.ndim < 1 or data.shape[-1] != n:
        raise ValueError(f"{what}: {n} measurements expected on the last axis, got {data.shape}")
    return data.reshape(-1, n), data.shape[:-1]


def invalidate(
    maps: dict[str, np.ndarray], bad: np.ndarray, ranges: dict[str, tuple[float, float]]
) -> None:
    """Set every map to NaN where ``bad`` or where a map in ``ranges`` leaves its range."""
    out = bad.copy()
    for name, (lo, hi) in ranges.items():
        value = maps[name]
        out |= ~np.isfinite(value) | (value < lo) | (value > hi)
    for value in maps.values():
        value[out] = np.nan


def parabolic_offset(left: np.ndarray, mid: np.ndarray, right: np.ndarray) -> np.ndarray:
    """The vertex of the parabola through (-1, left), (0, mid), (1, right), in grid steps,
    clipped to [-0.5, 0.5] (0 where the three points are collinear)."""
    curvature = left - 2.0 * mid + right
    with np.errstate(divide="ignore", invalid="ignore"):
        offset = np.where(curvature != 0, 0.5 * (left - right) / curvature, 0.0)
    return np.clip(np.nan_to_num(offset), -0.5, 0.5)


def chunks(n: int, size: int) -> list[slice]:
    """Slices covering range(n) in pieces of at most ``size``."""
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


#: A series' largest value counts as the scanner's ceiling (clipped magnitudes) when it is a
#: whole number reached by at least this many samples and this share of the finite ones.
MIN_SATURATED = 8
SATURATED_FRACTION = 1e-3


def saturated(data: np.ndarray) -> np.ndarray:
    """Samples at the scanner's ceiling: where a whole-number maximum recurs (the magnitude
    was clipped, e.g. at 4095 for 12-bit images), by :data:`MIN_SATURATED` and
    :data:`SATURATED_FRACTION`; all False when the maximum is a one-off."""
    data = np.asarray(data)
    finite = np.isfinite(data)
    if not finite.any():
        return np.zeros(data.shape, bool)
    top = float(data[finite].max())
    at_top = finite & (data == top)
    enough = max(MIN_SATURATED, SATURATED_FRACTION * finite.sum())
    if top <= 0 or top != round(top) or at_top.sum() < enough:
        return np.zeros(data.shape, bool)
    return at_top


def fit_by_pattern(
    fit: Callable[[np.ndarray, np.ndarray], Fit],
    data: np.ndarray,
    usable: np.ndarray,
    min_samples: int,
) -> Fit:
    """One fit per pattern of usable samples: ``fit(rows, use)`` fits the voxels ``rows``
    of ``data`` (voxels, n) on the samples where ``use``. Voxels with fewer than
    ``min_samples`` usable samples are NaN. The model text, notes and parameters are those
    of the fit on the most samples (all of them, unless every voxel lost some)."""
    patterns, inverse = np.unique(usable, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    counts = np.bincount(inverse, minlength=len(patterns))
    order = np.lexsort((-counts, -patterns.sum(axis=1)))
    maps: dict[str, np.ndarray] = {}
    residual = np.full(len(data), np.nan)
    head: Fit | None = None
    for k in order:
        use = patterns[k]
        if use.sum() < min_samples:
            continue
        rows = np.flatnonzero(inverse == k)
        part = fit(rows, use)
        head = head or part
        for name, value in part.maps.items():
            maps.setdefault(name, np.full(len(data), np.nan))[rows] = value
        residual[rows] = part.residual
    if head is None:
        raise ValueError(f"no voxel has {min_samples} usable samples to fit")
    return Fit(maps, residual, head.model, list(head.notes), dict(head.parameters))
