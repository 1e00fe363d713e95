"""T2 and M0 from a multi-echo spin-echo (CPMG) series.

The refocusing pulses of a real echo train are not 180 degrees everywhere (B1+, slice
profile), so stimulated echoes add to the later echoes and a mono-exponential fit over all
echoes overestimates T2. The default model is the extended phase graph (EPG) of the train
with a fitted refocusing efficiency B1 (refocusing angle = B1 x 180 degrees), matched
against a dictionary over (T2, B1) with a parabolic refinement of each axis. The
alternative, ``model="exp"``, drops the first echo and fits one exponential to the rest.
docs/fitting.md gives the measurement that chose the default.

Assumed: an ideal 90 degree excitation, echoes at n x ESP, and a tissue-like T1 for the
longitudinal (stimulated-echo) states, tied to T2 by :func:`assumed_t1` (1 s for brain
tissue up to 4 s for CSF); for brain tissue a wrong T1 moves T2 by under 1 %. M0 is the
apparent proton density at TE = 0, not corrected for T1 saturation at the series' TR.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import lru_cache

import numpy as np

from swigapp.fitting import T2_RANGE, Fit, as_series, chunks, invalidate, parabolic_offset

#: Dictionary grid: T2 log-spaced by this ratio over T2_RANGE, B1 over this range/step;
#: the search runs on every COARSE-th point first, then on the full grid around the best.
T2_STEP = 1.01
#: Refocusing angles beyond 180 degrees give the echoes of 360 degrees minus them, so B1 is
#: fitted in [0.4, 1] (a B1 of 1.1 reads 0.9).
B1_GRID = np.round(np.arange(0.4, 1.0001, 0.01), 3)
COARSE = (4, 5)
#: T1 (s) assumed for the stimulated-echo pathways at a given T2 (s), log-interpolated:
#: brain tissue, then towards CSF.
ASSUMED_T1_AT_T2 = ((0.08, 1.0), (0.3, 2.0), (1.0, 4.0))
MODELS = ("epg", "exp")


def assumed_t1(t2: np.ndarray) -> np.ndarray:
    """The T1 (s) the EPG dictionary assumes at T2 (s): :data:`ASSUMED_T1_AT_T2`."""
    knots_t2, knots_t1 = zip(*ASSUMED_T1_AT_T2, strict=True)
    return np.exp(np.interp(np.log(t2), np.log(knots_t2), np.log(knots_t1)))


def epg_train(
    t2: np.ndarray,
    b1: np.ndarray,
    esp: float,
    n_echoes: int,
    t1: np.ndarray | float | None = None,
) -> np.ndarray:
    """Echo amplitudes (atoms, n_echoes) of a CPMG train for each (T2, B1) pair (M0 = 1).

    Vectorised EPG from equilibrium: 90 degrees about y, then refocusing pulses of B1 x 180
    degrees about x, spaced ``esp`` s, with one dephasing step on each side of every pulse.
    ``t1`` (s, per atom or one value) defaults to :func:`assumed_t1`.
    """
    t2 = np.asarray(t2, dtype=np.float64).ravel()
    alpha = math.pi * np.asarray(b1, dtype=np.float64).ravel()
    atoms, states = t2.size, n_echoes + 2
    fp = np.zeros((atoms, states), complex)
    fm = np.zeros((atoms, states), complex)
    z = np.zeros((atoms, states), complex)
    fp[:, 0] = fm[:, 0] = 1.0  # after the 90 about y: Mx = 1, real
    e2 = np.exp(-esp / 2 / t2)[:, None]
    t1 = assumed_t1(t2) if t1 is None else np.broadcast_to(np.asarray(t1, np.float64), t2.shape)
    e1 = np.exp(-esp / 2 / t1)[:, None]
    c2 = (np.cos(alpha / 2) ** 2)[:, None]
    s2 = (np.sin(alpha / 2) ** 2)[:, None]
    sn = np.sin(alpha)[:, None]
    ca = np.cos(alpha)[:, None]
    echoes = np.zeros((atoms, n_echoes))

    def relax_and_shift() -> None:
        nonlocal fp, fm, z
        fp, fm, z = fp * e2, fm * e2, z * e1
        z[:, 0] += 1.0 - e1[:, 0]
        fp = np.concatenate([np.zeros((atoms, 1), complex), fp[:, :-1]], axis=1)
        fm = np.concatenate([fm[:, 1:], np.zeros((atoms, 1), complex)], axis=1)
        fp[:, 0] = np.conj(fm[:, 0])

    for k in range(n_echoes):
        relax_and_shift()
        fp, fm, z = (
            c2 * fp + s2 * fm - 1j * sn * z,
            s2 * fp + c2 * fm + 1j * sn * z,
            -0.5j * sn * fp + 0.5j * sn * fm + ca * z,
        )
        relax_and_shift()
        echoes[:, k] = np.abs(fp[:, 0])
    return echoes


def _atoms(model: str, echo_times: np.ndarray, t2: np.ndarray, b1: np.ndarray) -> np.ndarray:
    if model == "exp":
        return np.exp(-echo_times[None, :] / t2[:, None])
    esp = float(echo_times[0])
    return epg_train(t2, b1, esp, echo_times.size)


@lru_cache(maxsize=4)
def _trains(model: str, echo_times: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The (T2, B1) grid and its echo trains over all echoes (n_t2 * n_b1, echoes)."""
    te = np.asarray(echo_times)
    t2_grid = np.exp(np.arange(math.log(T2_RANGE[0]), math.log(T2_RANGE[1]), math.log(T2_STEP)))
    b1_grid = B1_GRID if model == "epg" else np.ones(1)
    t2_atoms, b1_atoms = (g.ravel() for g in np.meshgrid(t2_grid, b1_grid, indexing="ij"))
    return t2_grid, b1_grid, _atoms(model, te, t2_atoms, b1_atoms)


@lru_cache(maxsize=8)
def _dictionary(
    model: str, echo_times: tuple[float, ...], keep: tuple[bool, ...]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The (T2, B1) grid and its unit-norm echo trains (n_t2 * n_b1, echoes kept), the
    trains simulated over all echoes (:func:`_trains`, once per protocol)."""
    t2_grid, b1_grid, trains = _trains(model, echo_times)
    atoms = trains[:, np.asarray(keep)]
    unit = atoms / np.linalg.norm(atoms, axis=1, keepdims=True)
    return t2_grid, b1_grid, unit.astype(np.float32)


def _match(y: np.ndarray, unit: np.ndarray, n_t2: int, n_b1: int) -> tuple[np.ndarray, np.ndarray]:
    """Fractional grid indices (T2, B1) of the best-matching atom of each signal in ``y``:
    coarse search on every :data:`COARSE`-th atom, full search within one coarse step of
    its best, then a parabolic refinement along each axis."""
    grid = unit.reshape(n_t2, n_b1, -1)
    ci, cj = (COARSE[0], COARSE[1]) if n_b1 > 1 else (COARSE[0], 1)
    coarse = grid[::ci, ::cj]
    yf = y.astype(np.float32)
    score = yf @ coarse.reshape(-1, coarse.shape[-1]).T
    i0, j0 = np.unravel_index(score.argmax(axis=1), coarse.shape[:2])
    di = np.arange(-ci, ci + 1)
    dj = np.arange(-cj, cj + 1) if n_b1 > 1 else np.zeros(1, int)
    ii = np.clip(i0[:, None] * ci + di[None, :], 0, n_t2 - 1)  # (v, wi)
    jj = np.clip(j0[:, None] * cj + dj[None, :], 0, n_b1 - 1)  # (v, wj)
    local = grid[ii[:, :, None], jj[:, None, :]]  # (v, wi, wj, echoes)
    fine = np.einsum("vabk,vk->vab", local, yf)
    flat = fine.reshape(len(y), -1).argmax(axis=1)
    a, b = np.unravel_index(flat, fine.shape[1:])
    rows = np.arange(len(y))
    i, j = ii[rows, a], jj[rows, b]

    def refine(at: np.ndarray, n: int, pick: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        inner = (at > 0) & (at < n - 1)
        c = np.clip(at, 1, n - 2)
        off = parabolic_offset(pick(c - 1), pick(c), pick(c + 1))
        return at + np.where(inner, off, 0.0)

    score_at = lambda p, q: np.einsum("vk,vk->v", grid[p, q], yf)  # noqa: E731
    fi = refine(i, n_t2, lambda c: score_at(c, j))
    fj = refine(j, n_b1, lambda c: score_at(i, c)) if n_b1 > 1 else np.zeros(len(y))
    return fi, fj


def fit_mese(
    series: np.ndarray,
    echo_times: Sequence[float],
    model: str = "epg",
    chunk: int = 4096,
    use: Sequence[bool] | None = None,
) -> Fit:
    """Fit T2 (s) and M0 to a magnitude echo train stacked on the last axis of ``series``.

    ``echo_times`` in s (evenly spaced, the first at one spacing, as a CPMG train); ``use``:
    which echoes enter the fit (in the order given; e.g. clipped ones left out), the model
    still simulating the whole train. Returns maps T2, M0 and, for the EPG model, B1
    (refocusing efficiency, 1 = 180 degrees).
    """
    if model not in MODELS:
        raise ValueError(f"unknown MESE model {model!r} (one of {', '.join(MODELS)})")
    te = np.asarray(echo_times, dtype=np.float64)
    if te.size < 3:
        raise ValueError(f"MESE: at least 3 echoes are needed to fit T2, got {te.size}")
    order = np.argsort(te)
    te = te[order]
    keep = np.ones(te.size, bool) if use is None else np.asarray(use, bool)[order]
    if model == "exp":
        keep[0] = False
    if keep.sum() < (3 if model == "epg" else 2):
        raise ValueError(f"MESE: too few echoes to fit T2 ({int(keep.sum())} used)")
    data, shape = as_series(series, te.size, "MESE")
    data = data[:, order]
    if model == "epg":
        spacing = np.diff(np.concatenate([[0.0], te]))
        if not np.allclose(spacing, spacing[0], rtol=0.02):
            raise ValueError(
                f"MESE: the EPG model needs evenly spaced echoes from n x ESP, got TE = {te} s"
            )
    t2_grid, b1_grid, unit = _dictionary(model, tuple(te.tolist()), tuple(keep.tolist()))
    y = np.nan_to_num(data[:, keep])
    norm = np.linalg.norm(y, axis=1)
    best_t2 = np.zeros(len(y))
    best_b1 = np.ones(len(y))
    for part in chunks(len(y), chunk):
        t2_part, b1_part = _match(y[part], unit, t2_grid.size, b1_grid.size)
        best_t2[part] = np.exp(np.interp(t2_part, np.arange(t2_grid.size), np.log(t2_grid)))
        best_b1[part] = np.interp(b1_part, np.arange(b1_grid.size), b1_grid)
    fitted = np.zeros((len(y), te.size))
    for part in chunks(len(y), 8 * chunk):
        fitted[part] = _atoms(model, te, best_t2[part], best_b1[part])
    used_fit = fitted[:, keep]
    m0 = np.einsum("vk,vk->v", used_fit, y) / np.maximum(
        np.einsum("vk,vk->v", used_fit, used_fit), 1e-30
    )
    residual = np.sqrt(np.mean((y - m0[:, None] * used_fit) ** 2, axis=1))
    maps = {"T2": best_t2, "M0": m0}
    if model == "epg":
        maps["B1"] = best_b1
    bad = ~np.all(np.isfinite(data[:, keep]), axis=1) | (norm <= 0) | (m0 <= 0)
    invalidate(maps, bad, {"T2": T2_RANGE})
    residual[bad] = np.nan
    if model == "epg":
        text = (
            "T2 and M0 fitted to the echo train by dictionary matching against an extended "
            "phase graph of the CPMG train (T2 and refocusing efficiency B1 fitted; a "
            "tissue-like T1 tied to T2 assumed for the stimulated-echo pathways), with a "
            "parabolic refinement of each axis (swigapp)"
        )
    else:
        text = (
            "T2 and M0 fitted by one exponential to echoes 2 onwards (the first echo, free "
            "of stimulated echoes but unlike the rest, is discarded) (swigapp)"
        )
    notes = ["M0 is the apparent proton density at TE = 0, not corrected for T1 saturation"]
    return Fit(
        {k: v.reshape(shape) for k, v in maps.items()},
        residual.reshape(shape),
        text,
        notes,
        {"EchoTime": te.tolist(), "model": model},
    )
