"""Calibrated uncertainty: the orientation ensemble's spread turned into an SD that covers
the error at its nominal rate.

The spread of the network's predictions along its slice axes
(:func:`swigapp.models.inference.predict_ensemble`) ranks the error but understates it on
anatomies unlike training (median T1 spread 22 ms against a median error of 78 ms on a
real individual at 1x1x4 mm). The stated SD of each map is therefore

    sigma = scale * spread + floor * |map|

with ``scale`` and the relative ``floor`` per map fitted on validation individuals
(:func:`fit`): among floors on a grid, each with the scale that makes
|error| <= :data:`K` sigma hold in :data:`TARGET` of brain voxels, the pair with the
smallest median sigma (the sharpest calibrated interval). The pair is stored in the model
card (``uncertainty_calibration``) and applied by :func:`calibrated`; a model without one
(a model.pt of your own) gets its raw spread.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from swigapp.maps import MAP_ORDER

#: The interval stated: |error| <= K sigma ...
K = 2.0
#: ... in this share of brain voxels (the nominal coverage of +-2 SD of a Gaussian).
TARGET = 0.95
#: Relative floors tried by :func:`fit` (share of the map's value).
FLOORS = (0.0, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2)


def calibrated(
    spread: np.ndarray | None, maps: np.ndarray, calibration: Mapping[str, Mapping] | None
) -> np.ndarray | None:
    """The stated SD (3, X, Y, Z; map units: PD a.u., T1 and T2 in s) from the ensemble
    ``spread`` and the ``maps`` by ``calibration`` (per map ``scale`` and ``floor``; None:
    the spread as it is)."""
    if spread is None or not calibration:
        return spread
    out = np.empty_like(spread, dtype=np.float32)
    for i, name in enumerate(MAP_ORDER):
        c = calibration[name]
        out[i] = c["scale"] * spread[i] + c["floor"] * np.abs(maps[i])
    return np.where(spread > 0, out, np.float32(0.0)).astype(np.float32)


def describe(calibration: Mapping[str, Mapping] | None) -> str:
    """The sentence that says how the stated SD was made (empty without a calibration)."""
    if not calibration:
        return ""
    terms = ", ".join(
        f"{m} {calibration[m]['scale']:.3g} x spread + {calibration[m]['floor']:.3g} x |map|"
        for m in MAP_ORDER
    )
    where = calibration.get("fitted_on", "validation data")
    return (
        f" Calibrated so that |error| <= {K:g} SD held in {TARGET:.0%} of brain voxels on "
        f"{where}; the SD written is {terms}."
    )


def coverage(error: np.ndarray, sigma: np.ndarray, k: float = K) -> float:
    """Share of voxels (1D arrays) whose |error| is within ``k`` sigma."""
    return float(np.mean(np.abs(error) <= k * sigma))


def _scale_for(error: np.ndarray, spread: np.ndarray, base: np.ndarray) -> float:
    """The smallest scale s with |error| <= K (s spread + base) in :data:`TARGET` of the
    voxels (bisection on a monotone coverage)."""
    lo, hi = 0.0, 1.0
    while coverage(error, hi * spread + base) < TARGET and hi < 1e4:
        hi *= 2.0
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        lo, hi = (lo, mid) if coverage(error, mid * spread + base) >= TARGET else (mid, hi)
    return hi


def fit(
    errors: Sequence[np.ndarray], spreads: Sequence[np.ndarray], values: Sequence[np.ndarray]
) -> dict[str, dict[str, float]]:
    """Per map, ``scale`` and ``floor`` (see the module docstring) from validation voxels:
    lists over subjects of (3, N) arrays of the error, the ensemble spread and the map's
    value, in brain voxels. Also returns each map's coverage and median sigma there."""
    out = {}
    for i, name in enumerate(MAP_ORDER):
        err = np.concatenate([np.asarray(e[i], np.float64) for e in errors])
        spread = np.concatenate([np.asarray(s[i], np.float64) for s in spreads])
        value = np.abs(np.concatenate([np.asarray(v[i], np.float64) for v in values]))
        best = None
        for floor in FLOORS:
            scale = _scale_for(err, spread, floor * value)
            sigma = scale * spread + floor * value
            width = float(np.median(sigma))
            if best is None or width < best["median_sigma"]:
                best = {"scale": scale, "floor": floor, "median_sigma": width}
                best["coverage"] = coverage(err, sigma)
        out[name] = {k: round(float(v), 6) for k, v in best.items()}
    return out
