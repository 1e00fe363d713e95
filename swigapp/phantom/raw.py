"""Raw qMRI series of a phantom (BIDS qMRI file collections), made from its LR maps.

``swigapp-phantom --raw-qmri MESE,IRT1`` writes, in place of the maps these series give,
the images a scanner would have acquired at the LR maps' resolution: each image is the
signal model of its series applied voxel by voxel to the LR maps (PD, T1 s, T2 s), with
Rician noise. The models are those :mod:`swigapp.fitting` inverts, written independently
here from the physics (the EPG of :mod:`swigapp.fitting.mese` is shared: the tests check it
against :func:`swigapp.physics.simulate.epg_tse`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

#: The protocols written (times in s, angles in degrees).
MESE_ECHOES, MESE_SPACING, MESE_TR = 32, 0.01, 4.0
IRT1_TIMES, IRT1_TR, IRT1_TE = (0.05, 0.15, 0.3, 0.6, 1.0, 1.6, 2.6), 6.0, 0.012
IRT1_EFFICIENCY = 0.96
VFA_FLIPS, VFA_TR, VFA_TE = (3.0, 10.0, 20.0), 0.015, 0.003
MP2RAGE = {"tr": 5.0, "ti": (0.7, 2.5), "flips": (4.0, 5.0), "tau": 0.0071, "n": 160}
MP2RAGE_TE = 0.003
#: Smooth refocusing efficiency of the MESE train: 1 at the centre falling to this at the
#: corners of the field of view (a B1+ pattern at 3T).
MESE_B1_EDGE = 0.85
#: Noise SD of every image, as a fraction of PD's 99th percentile in the head.
NOISE = 0.005
KINDS = ("MESE", "IRT1", "VFA", "MP2RAGE")
PROVIDES = {"MESE": ("PD", "T2"), "IRT1": ("PD", "T1"), "VFA": ("PD", "T1"), "MP2RAGE": ("T1",)}


@dataclass
class RawImage:
    """One image of a series: its BIDS entities (in filename order), suffix, data, sidecar."""

    entities: dict[str, str]
    suffix: str
    data: np.ndarray
    sidecar: dict[str, Any]


def _b1_field(shape: tuple[int, ...]) -> np.ndarray:
    axes = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    r2 = sum(a * a for a in axes) / len(shape)
    return 1.0 - (1.0 - MESE_B1_EDGE) * r2


def _rician(signal: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    noisy = np.abs(
        signal
        + sigma * rng.standard_normal(signal.shape)
        + 1j * sigma * rng.standard_normal(signal.shape)
    )
    return noisy.astype(np.float32)


def _mese(
    pd: np.ndarray, t1: np.ndarray, t2: np.ndarray, sigma: float, rng: np.random.Generator
) -> list[RawImage]:
    """A multi-echo spin-echo train: EPG echoes under a smooth B1+ pattern, with T1
    recovery between trains."""
    from swigapp.fitting.mese import epg_train

    images: list[RawImage] = []
    b1 = _b1_field(pd.shape)
    trains = np.zeros((*pd.shape, MESE_ECHOES))
    idx = np.flatnonzero(pd > 0)
    for start in range(0, idx.size, 50_000):
        part = idx[start : start + 50_000]
        echoes = epg_train(
            t2.flat[part], b1.flat[part], MESE_SPACING, MESE_ECHOES, t1=t1.flat[part]
        )
        recovery = 1.0 - np.exp(-(MESE_TR - MESE_ECHOES * MESE_SPACING) / t1.flat[part])
        trains.reshape(-1, MESE_ECHOES)[part] = echoes * (pd.flat[part] * recovery)[:, None]
    for k in range(MESE_ECHOES):
        te = MESE_SPACING * (k + 1)
        images.append(
            RawImage(
                {"echo": str(k + 1)},
                "MESE",
                _rician(trains[..., k], sigma, rng),
                {
                    "EchoTime": round(te, 6),
                    "RepetitionTime": MESE_TR,
                    "FlipAngle": 90,
                    "RefocusingFlipAngle": 180,
                },
            )
        )
    return images


def _irt1(
    pd: np.ndarray, t1: np.ndarray, t2: np.ndarray, sigma: float, rng: np.random.Generator
) -> list[RawImage]:
    """Inversion recovery magnitude images at each inversion time (inversion efficiency below 1)."""
    images: list[RawImage] = []
    for k, ti in enumerate(IRT1_TIMES):
        signed = pd * (
            1 - (1 + IRT1_EFFICIENCY) * np.exp(-ti / t1) + IRT1_EFFICIENCY * np.exp(-IRT1_TR / t1)
        )
        signal = np.abs(signed) * np.exp(-IRT1_TE / t2)
        images.append(
            RawImage(
                {"inv": str(k + 1)},
                "IRT1",
                _rician(signal, sigma, rng),
                {
                    "InversionTime": ti,
                    "RepetitionTime": IRT1_TR,
                    "EchoTime": IRT1_TE,
                    "FlipAngle": 90,
                },
            )
        )
    return images


def _vfa(
    pd: np.ndarray, t1: np.ndarray, t2: np.ndarray, sigma: float, rng: np.random.Generator
) -> list[RawImage]:
    """Spoiled gradient echoes at each flip angle."""
    images: list[RawImage] = []
    e1 = np.exp(-VFA_TR / t1)
    for k, flip in enumerate(VFA_FLIPS):
        a = math.radians(flip)
        signal = pd * math.sin(a) * (1 - e1) / (1 - math.cos(a) * e1) * np.exp(-VFA_TE / t2)
        images.append(
            RawImage(
                {"flip": str(k + 1)},
                "VFA",
                _rician(signal, sigma * 0.1, rng),
                {
                    "FlipAngle": flip,
                    "RepetitionTimeExcitation": VFA_TR,
                    "PulseSequenceType": "spoiled gradient echo",
                    "EchoTime": VFA_TE,
                },
            )
        )
    return images


def _mp2rage(
    pd: np.ndarray, t1: np.ndarray, t2: np.ndarray, sigma: float, rng: np.random.Generator
) -> list[RawImage]:
    """MP2RAGE's two inversions (magnitude and phase) and the UNIT1 image."""
    from swigapp.fitting.mp2rage import MP2RAGEProtocol, mp2rage_signals

    images: list[RawImage] = []
    protocol = MP2RAGEProtocol(**MP2RAGE)
    g = mp2rage_signals(t1, protocol)
    scale = pd * np.exp(-MP2RAGE_TE / t2)
    noisy = []
    for k, gk in enumerate(g):
        complex_ = scale * gk + sigma * 0.1 * (
            rng.standard_normal(pd.shape) + 1j * rng.standard_normal(pd.shape)
        )
        noisy.append(complex_)
        common = {
            "InversionTime": MP2RAGE["ti"][k],
            "FlipAngle": MP2RAGE["flips"][k],
            "RepetitionTimePreparation": MP2RAGE["tr"],
            "RepetitionTimeExcitation": MP2RAGE["tau"],
            "NumberShots": MP2RAGE["n"],
            "EchoTime": MP2RAGE_TE,
        }
        images.append(
            RawImage(
                {"inv": str(k + 1), "part": "mag"},
                "MP2RAGE",
                np.abs(complex_).astype(np.float32),
                common,
            )
        )
        images.append(
            RawImage(
                {"inv": str(k + 1), "part": "phase"},
                "MP2RAGE",
                np.angle(complex_).astype(np.float32),
                common | {"Units": "rad"},
            )
        )
    value = np.real(noisy[0] * np.conj(noisy[1])) / np.maximum(
        np.abs(noisy[0]) ** 2 + np.abs(noisy[1]) ** 2, 1e-12
    )
    stored = np.round((np.clip(value, -0.5, 0.5) + 0.5) * 4095).astype(np.float32)
    images.append(RawImage({}, "UNIT1", stored, {"BasedOn": [], "Units": "arbitrary"}))
    return images


#: Each series' images from (PD, T1 s, T2 s, noise SD, rng).
_SERIES = {"MESE": _mese, "IRT1": _irt1, "VFA": _vfa, "MP2RAGE": _mp2rage}


def series_images(
    kind: str, maps: Mapping[str, np.ndarray], rng: np.random.Generator
) -> list[RawImage]:
    """The images of one raw series ``kind`` from LR maps (PD a.u., T1/T2 s)."""
    if kind not in _SERIES:
        raise ValueError(f"unknown raw qMRI series {kind!r} (one of {', '.join(KINDS)})")
    pd = np.clip(np.nan_to_num(maps["PD"]), 0, None).astype(np.float64)
    t1 = np.clip(np.nan_to_num(maps["T1"], nan=1.0), 0.05, 6.0)
    t2 = np.clip(np.nan_to_num(maps["T2"], nan=0.08), 0.005, 3.0)
    positive = pd[pd > 0]
    sigma = NOISE * float(np.percentile(positive, 99)) if positive.size else NOISE
    return _SERIES[kind](pd, t1, t2, sigma, rng)
