"""T1 and M0 from a variable-flip-angle series of spoiled gradient echoes.

Model (Ernst): S(a) = M0 sin(B1 a) (1 - E1) / (1 - cos(B1 a) E1), E1 = exp(-TR/T1). The
linear form S/sin = E1 S/tan + M0 (1 - E1) (DESPOT1) gives the start; Gauss-Newton on
(M0, E1) then minimises the squared error of the signals themselves, which the linear
form's transformed noise would bias. B1 is the transmit efficiency (actual / nominal flip
angle) from a TB1map; without one it is taken as 1 and T1 is B1-uncorrected. M0 includes
the readout's exp(-TE/T2*) weighting.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from swigapp.fitting import T1_RANGE, Fit, as_series, invalidate

#: Gauss-Newton iterations after the linear start.
ITERATIONS = 8


def fit_vfa(
    series: np.ndarray,
    flip_angles: Sequence[float],
    repetition_time: float,
    b1: np.ndarray | None = None,
) -> Fit:
    """Fit T1 (s) and M0 to spoiled gradient echoes stacked on the last axis of ``series``
    at nominal ``flip_angles`` (degrees) and ``repetition_time`` (s); ``b1``: transmit
    efficiency per voxel (1 = nominal; the voxel shape of the series) or None."""
    flips = np.asarray(flip_angles, dtype=np.float64)
    if flips.size < 2 or np.unique(flips).size < 2:
        raise ValueError(f"VFA: at least 2 different flip angles are needed, got {flips.tolist()}")
    if not repetition_time or repetition_time <= 0:
        raise ValueError("VFA: a positive RepetitionTime (s) is needed")
    data, shape = as_series(series, flips.size, "VFA")
    if b1 is None:
        gain = np.ones(len(data))
    else:
        gain = np.asarray(b1, dtype=np.float64).reshape(-1)
        if gain.size != len(data):
            raise ValueError(f"VFA: the B1 map has {gain.size} voxels, the series {len(data)}")
    alpha = np.deg2rad(flips)[None, :] * gain[:, None]
    sin, cos = np.sin(alpha), np.cos(alpha)
    y = np.nan_to_num(data)
    with np.errstate(divide="ignore", invalid="ignore"):
        e1, m0 = _despot1(y / sin, y * cos / sin)
        for _ in range(ITERATIONS):
            e1 = np.clip(e1, 1e-6, 1 - 1e-9)
            den = 1.0 - cos * e1[:, None]
            f = m0[:, None] * sin * (1.0 - e1[:, None]) / den
            j0 = sin * (1.0 - e1[:, None]) / den
            j1 = m0[:, None] * sin * (cos - 1.0) / den**2
            r = y - f
            a00, a01, a11 = (j0 * j0).sum(1), (j0 * j1).sum(1), (j1 * j1).sum(1)
            g0, g1 = (j0 * r).sum(1), (j1 * r).sum(1)
            det = a00 * a11 - a01 * a01
            m0 = m0 + (a11 * g0 - a01 * g1) / det
            e1 = e1 + (a00 * g1 - a01 * g0) / det
        t1 = -repetition_time / np.log(e1)
        fitted = m0[:, None] * sin * (1.0 - e1[:, None]) / (1.0 - cos * e1[:, None])
    residual = np.sqrt(np.mean((y - fitted) ** 2, axis=1))
    maps = {"T1": t1, "M0": m0}
    bad = ~np.all(np.isfinite(data), axis=1) | ~np.isfinite(gain) | (gain <= 0) | (m0 <= 0)
    invalidate(maps, bad, {"T1": T1_RANGE})
    residual[~np.isfinite(t1)] = np.nan
    notes = ["M0 includes the readout's exp(-TE/T2*) weighting"]
    if b1 is None:
        notes.append("no B1 map (TB1map): T1 and M0 are not corrected for B1")
    text = (
        "T1 fitted to variable-flip-angle spoiled gradient echoes by the Ernst equation "
        "(linear DESPOT1 start, then Gauss-Newton on the signals)"
        + (", flip angles scaled by the B1 map" if b1 is not None else ", B1 uncorrected")
        + " (swigapp)"
    )
    return Fit(
        {k: v.reshape(shape) for k, v in maps.items()},
        residual.reshape(shape),
        text,
        notes,
        {"FlipAngle": flips.tolist(), "RepetitionTime": repetition_time, "B1": b1 is not None},
    )


def _despot1(y: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-voxel line fit y = E1 x + M0 (1 - E1): (E1, M0)."""
    n = y.shape[1]
    sx, sy = x.sum(1), y.sum(1)
    sxx, sxy = (x * x).sum(1), (x * y).sum(1)
    e1 = (n * sxy - sx * sy) / (n * sxx - sx * sx)
    m0 = (sy - e1 * sx) / n / (1.0 - e1)
    return e1, m0
