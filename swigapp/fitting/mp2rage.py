"""T1 from an MP2RAGE acquisition: the uniform image (UNIT1) or the two inversions.

The MP2RAGE (Marques et al., NeuroImage 2010) reads two gradient-echo trains after each
inversion; UNI = G1 G2 / (G1^2 + G2^2) cancels M0, T2* and the receive field and depends
on T1 through the sequence alone. Here the longitudinal magnetisation of one cycle is a
chain of affine maps (relaxation, inversion, excitation trains), solved for its steady
state in closed form; UNI(T1) on a fine grid is then inverted on its monotone branch (the
lookup table). The transmit field is not modelled: T1 is B1-uncorrected.

Siemens stores UNI as integers 0..4095 (UNI + 0.5) x 4095; such images are recognised by
their range. From the two inversions the complex (or real, phase-restored) signals are
needed: magnitudes alone lose the sign of G1 that UNI carries.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from swigapp.fitting import T1_RANGE, Fit, invalidate

#: Inversion efficiency of the adiabatic inversion pulse assumed by the lookup table (the
#: value Marques et al. 2010 used).
INVERSION_EFFICIENCY = 0.96
#: Largest stored value of an integer UNIT1 image.
UNIT1_INTEGER_MAX = 4095.0


@dataclass(frozen=True)
class MP2RAGEProtocol:
    """The timing of an MP2RAGE: ``tr`` RepetitionTimePreparation (s, inversion to
    inversion), ``ti`` the two InversionTime (s, to the k-space centre of each train),
    ``flips`` the two FlipAngle (degrees), ``tau`` RepetitionTimeExcitation (s), ``n``
    excitations per train (NumberShots), ``k`` excitations before the k-space centre
    (default n/2, linear ordering)."""

    tr: float
    ti: tuple[float, float]
    flips: tuple[float, float]
    tau: float
    n: int
    k: float | None = None
    efficiency: float = INVERSION_EFFICIENCY

    def delays(self) -> tuple[float, float, float]:
        """The free delays (s): inversion to train 1, train 1 to train 2, train 2 to the
        next inversion; ValueError when the timing is impossible."""
        k = self.n / 2 if self.k is None else self.k
        ta = self.ti[0] - k * self.tau
        tb = self.ti[1] - self.ti[0] - self.n * self.tau
        tc = self.tr - self.ti[1] - (self.n - k) * self.tau
        if min(ta, tb, tc) < 0:
            raise ValueError(
                f"impossible MP2RAGE timing: TR {self.tr} s, TI {self.ti} s, {self.n} "
                f"excitations of {self.tau} s give delays {ta:.4f}, {tb:.4f}, {tc:.4f} s"
            )
        return ta, tb, tc


def mp2rage_signals(t1: np.ndarray, protocol: MP2RAGEProtocol) -> tuple[np.ndarray, np.ndarray]:
    """The signed k-space-centre signals (G1, G2) of both trains for T1 (s), M0 = 1."""
    t1 = np.asarray(t1, dtype=np.float64)
    ta, tb, tc = protocol.delays()
    k = protocol.n / 2 if protocol.k is None else protocol.k

    def relax(t: float) -> tuple[np.ndarray, np.ndarray]:
        e = np.exp(-t / t1)
        return e, 1.0 - e

    def train(flip: float, count: float) -> tuple[np.ndarray, np.ndarray]:
        e = np.exp(-protocol.tau / t1)
        q = math.cos(math.radians(flip)) * e
        return q**count, (1.0 - e) * (1.0 - q**count) / (1.0 - q)

    def then(first: tuple, second: tuple) -> tuple[np.ndarray, np.ndarray]:
        (a1, b1), (a2, b2) = first, second
        return a2 * a1, a2 * b1 + b2

    inversion = (-protocol.efficiency * np.ones_like(t1), np.zeros_like(t1))
    before_1 = then(inversion, relax(ta))
    centre_1 = then(before_1, train(protocol.flips[0], k))
    before_2 = then(then(before_1, train(protocol.flips[0], protocol.n)), relax(tb))
    centre_2 = then(before_2, train(protocol.flips[1], k))
    cycle = then(then(before_2, train(protocol.flips[1], protocol.n)), relax(tc))
    start = cycle[1] / (1.0 - cycle[0])  # Mz before the inversion, in steady state
    mz1 = centre_1[0] * start + centre_1[1]
    mz2 = centre_2[0] * start + centre_2[1]
    return (
        math.sin(math.radians(protocol.flips[0])) * mz1,
        math.sin(math.radians(protocol.flips[1])) * mz2,
    )


def uni(g1: np.ndarray, g2: np.ndarray) -> np.ndarray:
    """UNI = G1 G2 / (G1^2 + G2^2), in [-0.5, 0.5]."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return g1 * g2 / (g1 * g1 + g2 * g2)


def lookup_table(protocol: MP2RAGEProtocol) -> tuple[np.ndarray, np.ndarray]:
    """(UNI ascending, T1 s) on the monotone branch of UNI(T1) that holds T1 = 1 s."""
    t1 = np.exp(np.linspace(math.log(T1_RANGE[0]), math.log(T1_RANGE[1]), 4000))
    values = uni(*mp2rage_signals(t1, protocol))
    step = np.sign(np.diff(values))
    centre = int(np.searchsorted(t1, 1.0))
    direction = step[min(centre, step.size - 1)]
    lo = centre
    while lo > 0 and step[lo - 1] == direction:
        lo -= 1
    hi = centre
    while hi < step.size and step[hi] == direction:
        hi += 1
    t1, values = t1[lo : hi + 1], values[lo : hi + 1]
    order = np.argsort(values)
    return values[order], t1[order]


def as_uni(data: np.ndarray) -> np.ndarray:
    """A UNIT1 image as UNI in [-0.5, 0.5]: integer images (0..4095) are rescaled."""
    data = np.asarray(data, dtype=np.float64)
    finite = data[np.isfinite(data)]
    if finite.size and (finite.max() > 1.0 or (finite.min() >= 0.0 and finite.max() > 0.5)):
        return data / UNIT1_INTEGER_MAX - 0.5
    return data


def fit_mp2rage(
    protocol: MP2RAGEProtocol,
    unit1: np.ndarray | None = None,
    inv1: np.ndarray | None = None,
    inv2: np.ndarray | None = None,
) -> Fit:
    """T1 (s) from ``unit1`` (UNI, float or Siemens integers) or from the signed/complex
    inversions ``inv1``/``inv2``; M0 (series units) from ``inv2`` when given."""
    if unit1 is None and (inv1 is None or inv2 is None):
        raise ValueError("MP2RAGE: a UNIT1 image or both inversions are needed")
    if unit1 is not None:
        values = as_uni(unit1)
        source = "the uniform image (UNIT1)"
    else:
        g1, g2 = np.asarray(inv1), np.asarray(inv2)
        if np.iscomplexobj(g1) or np.iscomplexobj(g2):
            values = np.real(g1 * np.conj(g2)) / (np.abs(g1) ** 2 + np.abs(g2) ** 2)
        else:
            values = uni(g1.astype(np.float64), g2.astype(np.float64))
        source = "the two inversions"
    table_uni, table_t1 = lookup_table(protocol)
    t1 = np.interp(values, table_uni, table_t1, left=np.nan, right=np.nan)
    maps = {"T1": t1}
    residual = np.zeros_like(t1)
    if inv2 is not None:
        _, g2_model = mp2rage_signals(np.nan_to_num(t1, nan=1.0), protocol)
        with np.errstate(divide="ignore", invalid="ignore"):
            maps["M0"] = np.abs(np.asarray(inv2)) / np.abs(g2_model)
    bad = ~np.isfinite(values)
    invalidate(maps, bad, {"T1": T1_RANGE})
    residual[~np.isfinite(t1)] = np.nan
    text = (
        f"T1 from {source} by the MP2RAGE lookup table (after Marques et al., NeuroImage "
        f"2010; inversion efficiency {protocol.efficiency:g}, transmit field not modelled) "
        "(swigapp)"
    )
    notes = ["T1 is not corrected for B1 (the transmit field)"]
    if inv2 is None:
        notes.append("no M0: the second inversion was not given")
    return Fit(maps, residual, text, notes, {"protocol": protocol.__dict__.copy()})
