"""Differentiable MR signal equations (torch), with a thin numpy layer over the same code.

All times are in seconds (TR, TE, TI, tau, T1, T2), flip angles in radians, PD in
arbitrary units (water = 1). Every function broadcasts over voxel maps of any shape and
works for float32/float64 on CPU or CUDA; gradients are finite for T1, T2 -> 0+ (values
are clamped at :data:`MIN_RELAXATION`) and for very long relaxation times.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

#: Relaxation times are clamped from below at this value (s) so that exp(-t/T) and its
#: gradient stay finite at T -> 0+.
MIN_RELAXATION = 1e-6

Tensorish = torch.Tensor | float


def _cos_sin(flip: Tensorish) -> tuple[Tensorish, Tensorish]:
    """cos and sin of a flip angle (rad): a number, or a per-voxel tensor (B1+ errors)."""
    if isinstance(flip, torch.Tensor):
        return torch.cos(flip), torch.sin(flip)
    return math.cos(flip), math.sin(flip)


def _relax(t: Tensorish, T: torch.Tensor) -> torch.Tensor:
    """exp(-t / T) with T clamped at MIN_RELAXATION (t and T in seconds)."""
    return torch.exp(-t / torch.clamp_min(T, MIN_RELAXATION))


def spin_echo(
    pd: torch.Tensor, t1: torch.Tensor, t2: torch.Tensor, tr: float, te: float
) -> torch.Tensor:
    """Spin echo / turbo spin echo magnitude (TSE: pass the effective TE).

    S = PD (1 - 2 exp(-(TR - TE/2)/T1) + exp(-TR/T1)) exp(-TE/T2); TR, TE, T1, T2 in s.
    """
    longitudinal = 1.0 - 2.0 * _relax(tr - te / 2.0, t1) + _relax(tr, t1)
    return pd * longitudinal * _relax(te, t2)


def inversion_recovery(
    pd: torch.Tensor, t1: torch.Tensor, t2: torch.Tensor, tr: float, te: float, ti: float
) -> torch.Tensor:
    """Magnitude inversion recovery (T2-FLAIR, STIR, IR-SE).

    S = PD |1 - 2 exp(-TI/T1) + exp(-TR/T1)| exp(-TE/T2); nulls T1 = TI/ln 2 when TR >> T1.
    """
    longitudinal = 1.0 - 2.0 * _relax(ti, t1) + _relax(tr, t1)
    return pd * torch.abs(longitudinal) * _relax(te, t2)


def spoiled_gre(
    pd: torch.Tensor, t1: torch.Tensor, t2: torch.Tensor, tr: float, te: float, flip: Tensorish
) -> torch.Tensor:
    """Spoiled gradient echo (Ernst equation), flip in radians (a number or per voxel).

    S = PD sin(a) (1 - E1) / (1 - cos(a) E1) exp(-TE/T2*), E1 = exp(-TR/T1).
    Approximation: T2* is taken equal to T2 (no T2' map is estimated), so the TE
    weighting is too weak where T2' matters (iron, air-tissue interfaces).
    """
    e1 = _relax(tr, t1)
    cos, sin = _cos_sin(flip)
    return pd * sin * (1.0 - e1) / (1.0 - cos * e1) * _relax(te, t2)


def mprage(
    pd: torch.Tensor,
    t1: torch.Tensor,
    t2: torch.Tensor,
    tr: float,
    ti: float,
    flip: Tensorish,
    tau: float,
    n_pulses: int,
    te: float = 0.0,
    k_centre: float | None = None,
    inversion_efficiency: float = 1.0,
) -> torch.Tensor:
    """MPRAGE signal at the k-space centre, closed form of the steady-state recursion.

    One cycle of length TR (RepetitionTimePreparation): inversion, delay TA, ``n_pulses``
    excitations of flip ``flip`` (rad) spaced ``tau`` (RepetitionTimeExcitation, s), delay
    TD. ``ti`` is the time from inversion to the k-space-centre excitation, number
    ``k_centre`` (default n_pulses/2, linear ordering), so TA = TI - k tau and
    TD = TR - TA - N tau. With E = exp(-tau/T1), q = cos(a) E, EA = exp(-TA/T1),
    ED = exp(-TD/T1), Mss = (1 - E)/(1 - q):
    Mpre = [(Mss (1 - q^N) + (1 - EA) q^N) ED + (1 - ED)] / (1 + EA q^N ED),
    MA = -Mpre EA + (1 - EA), S = PD sin(a) |Mss + (MA - Mss) q^k| exp(-TE/T2).
    An imperfect inversion (``inversion_efficiency`` eta < 1: Mz -> -eta Mz) puts eta
    before Mpre in MA and in the denominator of Mpre. ``flip`` may be per voxel (B1+).
    """
    k = n_pulses / 2.0 if k_centre is None else float(k_centre)
    ta, td = mprage_delays(tr, ti, tau, n_pulses, k)
    e = _relax(tau, t1)
    cos, sin = _cos_sin(flip)
    eta = inversion_efficiency
    q = cos * e
    ea = _relax(ta, t1)
    ed = _relax(td, t1)
    mss = (1.0 - e) / (1.0 - q)
    qn = q**n_pulses
    m_pre = ((mss * (1.0 - qn) + (1.0 - ea) * qn) * ed + (1.0 - ed)) / (1.0 + eta * ea * qn * ed)
    m_a = -eta * m_pre * ea + (1.0 - ea)
    mz = mss + (m_a - mss) * q**k
    return pd * sin * torch.abs(mz) * _relax(te, t2)


def mprage_delays(
    tr: float, ti: float, tau: float, n_pulses: int, k_centre: float
) -> tuple[float, float]:
    """MPRAGE delays (TA, TD) in s from TR, TI, tau, N and the k-space-centre index.

    Raises ValueError when the timing is impossible (negative TA or TD).
    """
    ta = ti - k_centre * tau
    td = tr - ta - n_pulses * tau
    if ta < 0 or td < 0:
        raise ValueError(
            f"impossible MPRAGE timing: TR={tr} s, TI={ti} s, {n_pulses} pulses of {tau} s "
            f"give TA={ta:.4f} s, TD={td:.4f} s (both must be >= 0)"
        )
    return ta, td


SignalFn = Callable[..., torch.Tensor]


def as_numpy_fn(fn: SignalFn) -> Callable[..., np.ndarray]:
    """Wrap a torch signal function so it takes and returns numpy arrays (float64)."""

    def wrapped(pd: np.ndarray, t1: np.ndarray, t2: np.ndarray, **params: float) -> np.ndarray:
        args = [torch.as_tensor(np.asarray(a, dtype=np.float64)) for a in (pd, t1, t2)]
        with torch.no_grad():
            return fn(*args, **params).numpy()

    wrapped.__name__ = fn.__name__
    wrapped.__doc__ = f"numpy version of :func:`{fn.__name__}` (same code, float64)."
    return wrapped
