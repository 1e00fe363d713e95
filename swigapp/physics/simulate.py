"""Reference simulations of the sequences, independent of the closed forms in
:mod:`swigapp.physics.signal`: a Bloch simulation of one isochromat under hard pulses and an
extended-phase-graph (EPG) simulation of a spin-echo train. The tests check the closed forms
against these; docs/physics.md states where and by how much the closed forms differ.

Times in seconds, angles in radians, M0 = 1. Pulses are instantaneous; transverse
magnetisation is spoiled ideally (set to zero) where a sequence says so.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


def rotation(angle: float, phase: float = 0.0) -> np.ndarray:
    """3x3 rotation of (Mx, My, Mz) by ``angle`` about the transverse axis at ``phase``
    (0: x, pi/2: y), right-handed."""
    ux, uy = math.cos(phase), math.sin(phase)
    c, s = math.cos(angle), math.sin(angle)
    return np.array(
        [
            [c + ux * ux * (1 - c), ux * uy * (1 - c), uy * s],
            [ux * uy * (1 - c), c + uy * uy * (1 - c), -ux * s],
            [-uy * s, ux * s, c],
        ]
    )


@dataclass(frozen=True)
class Event:
    """One step of a sequence: ``kind`` is "pulse" (``angle``, ``phase``), "relax"
    (``duration`` s), "spoil" (transverse magnetisation to zero) or "read" (record |Mxy|)."""

    kind: str
    angle: float = 0.0
    phase: float = 0.0
    duration: float = 0.0


def pulse(angle: float, phase: float = 0.0) -> Event:
    """A hard RF pulse (radians)."""
    return Event("pulse", angle=angle, phase=phase)


def relax(duration: float) -> Event:
    """Free relaxation for ``duration`` seconds (on resonance)."""
    return Event("relax", duration=duration)


SPOIL, READ = Event("spoil"), Event("read")


def bloch_steady_state(
    events: Sequence[Event], t1: float, t2: float, repetitions: int = 200
) -> list[float]:
    """Run one repetition of ``events`` over and over from M = (0, 0, 1); return the |Mxy|
    read in the last repetition (the steady state when ``repetitions`` is long enough)."""
    m = np.array([0.0, 0.0, 1.0])
    reads: list[float] = []
    for _ in range(repetitions):
        reads = []
        for e in events:
            if e.kind == "pulse":
                m = rotation(e.angle, e.phase) @ m
            elif e.kind == "relax":
                e1, e2 = math.exp(-e.duration / t1), math.exp(-e.duration / t2)
                m = np.array([m[0] * e2, m[1] * e2, m[2] * e1 + 1.0 - e1])
            elif e.kind == "spoil":
                m = np.array([0.0, 0.0, m[2]])
            elif e.kind == "read":
                reads.append(float(math.hypot(m[0], m[1])))
            else:
                raise ValueError(f"unknown event {e.kind!r}")
    return reads


def _spin_echo_readout(te: float) -> list[Event]:
    """Spoil, 90 about x, 180 about y at TE/2, read at TE."""
    return [
        SPOIL,
        pulse(math.pi / 2),
        relax(te / 2),
        pulse(math.pi, math.pi / 2),
        relax(te / 2),
        READ,
    ]


def spin_echo_events(tr: float, te: float) -> list[Event]:
    """Spin echo: 90 about x, 180 about y at TE/2, read at TE, spoil before the next TR."""
    return [*_spin_echo_readout(te), relax(tr - te)]


def inversion_recovery_events(tr: float, ti: float, te: float) -> list[Event]:
    """Inversion recovery with a spin-echo readout: 180, TI, 90, 180 at TE/2, read at TE;
    TR runs from inversion to inversion."""
    return [SPOIL, pulse(math.pi), relax(ti), *_spin_echo_readout(te), relax(tr - ti - te)]


def spoiled_gre_events(tr: float, te: float, flip: float) -> list[Event]:
    """Spoiled gradient echo: excite, read at TE, spoil ideally before the next pulse."""
    return [SPOIL, pulse(flip), relax(te), READ, relax(tr - te)]


def epg_tse(
    t1: float,
    t2: float,
    tr: float,
    esp: float,
    etl: int,
    refocus: float = math.pi,
    inversion_ti: float | None = None,
    repetitions: int = 60,
) -> np.ndarray:
    """Echo amplitudes of a (turbo) spin-echo train in steady state, by EPG.

    90 degrees about y, then ``etl`` refocusing pulses of ``refocus`` radians about x (CPMG)
    spaced ``esp``, echoes at n * esp, one gradient dephasing unit on each side of every
    refocusing pulse; after the train the transverse states are spoiled and Z recovers until
    the next TR. With ``inversion_ti`` an ideal inversion precedes the excitation by TI
    (FLAIR/STIR with a TSE readout; TR runs from inversion to inversion).
    """
    n = 2 * etl + 2
    fp = np.zeros(n, complex)
    fm = np.zeros(n, complex)
    z = np.zeros(n, complex)
    z[0] = 1.0

    def rf(alpha: float, phi: float) -> None:
        nonlocal fp, fm, z
        c2, s2, s = math.cos(alpha / 2) ** 2, math.sin(alpha / 2) ** 2, math.sin(alpha)
        ep, em = np.exp(1j * phi), np.exp(-1j * phi)
        fp, fm, z = (
            c2 * fp + ep**2 * s2 * fm - 1j * ep * s * z,
            em**2 * s2 * fp + c2 * fm + 1j * em * s * z,
            -0.5j * em * s * fp + 0.5j * ep * s * fm + math.cos(alpha) * z,
        )

    def relax_states(t: float) -> None:
        nonlocal fp, fm, z
        e1, e2 = math.exp(-t / t1), math.exp(-t / t2)
        fp, fm, z = fp * e2, fm * e2, z * e1
        z[0] += 1.0 - e1

    def dephase() -> None:
        nonlocal fp, fm
        fp = np.concatenate([[0.0], fp[:-1]])
        fm = np.concatenate([fm[1:], [0.0]])
        fp[0] = np.conj(fm[0])

    def spoil() -> None:
        nonlocal fp, fm, z
        fp, fm = np.zeros(n, complex), np.zeros(n, complex)
        z = np.concatenate([z[:1], np.zeros(n - 1, complex)])

    echoes = np.zeros(etl)
    for _ in range(repetitions):
        used = 0.0
        if inversion_ti is not None:
            spoil()
            rf(math.pi, 0.0)
            relax_states(inversion_ti)
            spoil()
            used = inversion_ti
        rf(math.pi / 2, math.pi / 2)
        for k in range(etl):
            relax_states(esp / 2)
            dephase()
            rf(refocus, 0.0)
            relax_states(esp / 2)
            dephase()
            echoes[k] = abs(fp[0])
        spoil()
        relax_states(tr - used - etl * esp)
    return echoes
