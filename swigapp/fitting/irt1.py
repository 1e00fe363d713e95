"""T1 and M0 from an inversion-recovery series of magnitude images.

Model: S(TI) = |a + b exp(-TI/T1)|. Magnitude data lose the sign of the points before the
null, so the polarity is restored as in Barral et al. (MRM 2010): the points before the
smallest one are made negative, with and without the smallest one itself, and the better
of the two fits wins. For each restoration, T1 is found on a log-spaced grid by the energy
of the data's projection onto span{1, exp(-TI/T1)} (a and b are linear), refined by a
parabola through the best grid point and its neighbours; a and b then follow by least
squares.

With a readout that saturates (90 degrees) and a repetition time TR from inversion to
inversion, a = M0 (1 + eta exp(-TR/T1)) and b = -(1 + eta) M0, where eta is the inversion
efficiency (1 for a perfect inversion); M0 and eta are solved from a and b. Without TR,
TR >> T1 is assumed. M0 includes the readout's exp(-TE/T2) weighting.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from swigapp.fitting import T1_RANGE, Fit, as_series, chunks, invalidate, parabolic_offset

#: T1 grid: log-spaced by this ratio over T1_RANGE.
T1_STEP = 1.01


def _orthonormal_bases(ti: np.ndarray, t1_grid: np.ndarray) -> np.ndarray:
    """Orthonormal bases (grid, n, 2) of span{1, exp(-TI/T1)} for each grid T1."""
    ones = np.ones((t1_grid.size, ti.size))
    decay = np.exp(-ti[None, :] / t1_grid[:, None])
    q, _ = np.linalg.qr(np.stack([ones, decay], axis=2))
    return q


def _restorations(y: np.ndarray) -> np.ndarray:
    """Both polarity restorations (2, voxels, n) of magnitudes ``y`` (TI ascending): the
    points before the minimum negated, and the minimum negated too."""
    n = y.shape[1]
    k = np.argmin(y, axis=1)
    idx = np.arange(n)[None, :]
    signs = np.stack(
        [np.where(idx < k[:, None], -1.0, 1.0), np.where(idx <= k[:, None], -1.0, 1.0)]
    )
    return signs * y[None]


def fit_irt1(
    series: np.ndarray,
    inversion_times: Sequence[float],
    repetition_time: float | None = None,
    chunk: int = 8192,
) -> Fit:
    """Fit T1 (s), M0 and the inversion efficiency to magnitude IR images stacked on the
    last axis of ``series``, at ``inversion_times`` (s); ``repetition_time`` (s, inversion
    to inversion) corrects M0 and the efficiency for incomplete recovery."""
    ti = np.asarray(inversion_times, dtype=np.float64)
    if ti.size < 3:
        raise ValueError(f"IRT1: at least 3 inversion times are needed, got {ti.size}")
    if np.unique(ti).size != ti.size:
        raise ValueError(f"IRT1: inversion times repeat: {ti.tolist()} s")
    order = np.argsort(ti)
    ti = ti[order]
    data, shape = as_series(series, ti.size, "IRT1")
    data = data[:, order]
    y = np.abs(np.nan_to_num(data))
    t1_grid = np.exp(np.arange(math.log(T1_RANGE[0]), math.log(T1_RANGE[1]), math.log(T1_STEP)))
    bases = _orthonormal_bases(ti, t1_grid)
    flat_bases = bases.transpose(1, 0, 2).reshape(ti.size, -1)  # (n, grid*2)
    n_grid = t1_grid.size
    t1 = np.zeros(len(y))
    a = np.zeros(len(y))
    b = np.zeros(len(y))
    for part in chunks(len(y), chunk):
        cand = _restorations(y[part])
        energy = ((cand @ flat_bases).reshape(2, -1, n_grid, 2) ** 2).sum(axis=3)
        best = energy.reshape(2, len(cand[0]), -1).max(axis=2)
        which = np.argmax(best, axis=0)
        rows = np.arange(len(which))
        e = energy[which, rows]  # (v, grid)
        g = e.argmax(axis=1)
        c = np.clip(g, 1, n_grid - 2)
        off = parabolic_offset(e[rows, c - 1], e[rows, c], e[rows, c + 1])
        off = np.where(c == g, off, 0.0)
        t1[part] = t1_grid[g] * T1_STEP**off
        signed = cand[which, rows]
        decay = np.exp(-ti[None, :] / t1[part][:, None])
        a[part], b[part] = _linear_fit(signed, decay)
    fitted = a[:, None] + b[:, None] * np.exp(-ti[None, :] / np.maximum(t1, 1e-6)[:, None])
    residual = np.sqrt(np.mean((np.abs(fitted) - y) ** 2, axis=1))
    r = np.exp(-repetition_time / np.maximum(t1, 1e-6)) if repetition_time else np.zeros_like(t1)
    with np.errstate(divide="ignore", invalid="ignore"):
        m0 = (a + b * r) / (1.0 - r)
        efficiency = -b / m0 - 1.0
    maps = {"T1": t1, "M0": m0, "InversionEfficiency": efficiency}
    bad = ~np.all(np.isfinite(data), axis=1) | (y.max(axis=1) <= 0) | (m0 <= 0) | (b >= 0)
    invalidate(maps, bad, {"T1": T1_RANGE})
    residual[~np.isfinite(t1)] = np.nan
    notes = ["M0 includes the readout's exp(-TE/T2) weighting"]
    if not repetition_time:
        notes.append("no RepetitionTime: full recovery between inversions assumed (TR >> T1)")
    text = (
        "T1 fitted to magnitude inversion-recovery images by |a + b exp(-TI/T1)| with "
        "polarity restoration (after Barral et al., MRM 2010; grid search on T1 with a "
        "parabolic refinement, a and b by least squares); M0 and the inversion efficiency "
        "from a and b" + (" with the repetition time" if repetition_time else "") + " (swigapp)"
    )
    return Fit(
        {k: v.reshape(shape) for k, v in maps.items()},
        residual.reshape(shape),
        text,
        notes,
        {"InversionTime": ti.tolist(), "RepetitionTime": repetition_time},
    )


def _linear_fit(y: np.ndarray, decay: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-voxel least squares of y = a + b decay (both (voxels, n))."""
    n = y.shape[1]
    sx, sy = decay.sum(axis=1), y.sum(axis=1)
    sxx, sxy = (decay * decay).sum(axis=1), (decay * y).sum(axis=1)
    det = n * sxx - sx * sx
    with np.errstate(divide="ignore", invalid="ignore"):
        b = (n * sxy - sx * sy) / det
        a = (sy - b * sx) / n
    return a, b
