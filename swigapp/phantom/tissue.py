"""Ground-truth PD, T1, T2 maps from tissue probabilities, with literature values at 3T.

Per-subject tissue values are drawn uniformly within literature ranges (T1, T2 in s):
WM T1 0.83 s (Wansapura et al. 1999; other studies up to 1.08), T2 0.06-0.10 s,
PD 0.65-0.70; GM T1 1.33 s (up to 1.82), T2 0.08-0.12 s, PD 0.78-0.83; CSF T1 3.8-4.3 s,
T2 0.5-2.0 s, PD 0.97-1.0; MS-like WM lesions T1 1.2-1.6 s, T2 0.12-0.25 s, PD 0.75-0.85.
Partial volume mixes the water fractions (PD) linearly and the relaxation *rates*
R1 = 1/T1, R2 = 1/T2 weighted by each tissue's water (fast-exchange approximation).

Deep grey matter (real anatomies with ``deep_gm``, :mod:`swigapp.phantom.individuals`):
PD 0.75-0.82, T1 1.05-1.35 s, T2 0.065-0.090 s at 3T, between WM and cortex as the iron-rich
nuclei are: putamen and thalamus T1 about 1.1 s, caudate about 1.3 s, T2 70-85 ms (Wansapura
et al., JMRI 9:531, 1999; Gelman et al., Radiology 210:759, 1999, T2 of the basal ganglia).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from swigapp.phantom.anatomy import Anatomy, smooth_field

#: (low, high) ranges per tissue: PD (water = 1), T1 (s), T2 (s).
TISSUE_RANGES: dict[str, dict[str, tuple[float, float]]] = {
    "WM": {"PD": (0.65, 0.70), "T1": (0.80, 1.00), "T2": (0.070, 0.090)},
    "GM": {"PD": (0.78, 0.83), "T1": (1.30, 1.60), "T2": (0.090, 0.115)},
    "CSF": {"PD": (0.97, 1.00), "T1": (3.80, 4.30), "T2": (1.00, 2.00)},
    "lesion": {"PD": (0.75, 0.85), "T1": (1.20, 1.60), "T2": (0.120, 0.250)},
}
TISSUES = tuple(TISSUE_RANGES)
#: (low, high) for deep GM (thalamus, basal ganglia): PD, T1 (s), T2 (s); drawn only for
#: anatomies with deep GM, after the draws of every other phantom.
DEEP_GM_RANGES: dict[str, dict[str, tuple[float, float]]] = {
    "deepGM": {"PD": (0.75, 0.82), "T1": (1.05, 1.35), "T2": (0.065, 0.090)}
}
MAPS = ("PD", "T1", "T2")


@dataclass(frozen=True)
class TruthMaps:
    """HR ground truth: maps (PD a.u., T1 and T2 in s), tissue fractions and masks."""

    pd: np.ndarray
    t1: np.ndarray
    t2: np.ndarray
    fractions: dict[str, np.ndarray]
    brain_mask: np.ndarray
    lesion_mask: np.ndarray
    values: dict[str, dict[str, float]]

    def as_dict(self) -> dict[str, np.ndarray]:
        """Maps by name: PD, T1, T2."""
        return {"PD": self.pd, "T1": self.t1, "T2": self.t2}

    def tissue_masks(self, threshold: float = 0.9) -> dict[str, np.ndarray]:
        """Voxels that are nearly pure tissue (fraction >= threshold), for per-tissue errors."""
        return {name: frac >= threshold for name, frac in self.fractions.items()}


def sample_tissue_values(
    rng: np.random.Generator,
    ranges: dict[str, dict[str, tuple[float, float]]] = TISSUE_RANGES,
) -> dict[str, dict[str, float]]:
    """Draw PD, T1 (s), T2 (s) for each tissue of ``ranges`` uniformly within its range."""
    return {
        tissue: {m: float(rng.uniform(*bounds)) for m, bounds in values.items()}
        for tissue, values in ranges.items()
    }


def lesion_fraction(
    anatomy: Anatomy, rng: np.random.Generator, n_lesions: int, radius_mm: tuple[float, float]
) -> np.ndarray:
    """Soft ellipsoidal lesions (0-1) centred in deep white matter (WM fraction > 0.95)."""
    out = np.zeros(anatomy.shape, dtype=np.float32)
    candidates = np.argwhere(anatomy.wm > 0.95)
    if n_lesions <= 0 or candidates.size == 0:
        return out
    vox = np.asarray(anatomy.voxel_size)
    grid = np.stack(np.meshgrid(*(np.arange(n) for n in anatomy.shape), indexing="ij"), -1)
    for _ in range(n_lesions):
        centre = candidates[rng.integers(len(candidates))]
        radii = rng.uniform(*radius_mm, size=3)
        dist = np.sqrt((((grid - centre) * vox / radii) ** 2).sum(-1))
        blob = 1.0 / (1.0 + np.exp((dist - 1.0) / 0.15))  # soft edge, ~15% of the radius
        out = np.maximum(out, blob.astype(np.float32))
    return out * np.clip(anatomy.wm / 0.5, 0, 1)  # lesions stay in white matter


def make_truth(
    anatomy: Anatomy,
    rng: np.random.Generator,
    n_lesions: int = 3,
    lesion_radius_mm: tuple[float, float] = (2.0, 6.0),
    heterogeneity: float = 0.03,
    head: bool = False,
    adjust_values: Callable[[dict], dict] | None = None,
    lesion: np.ndarray | None = None,
) -> TruthMaps:
    """HR ground-truth maps with per-subject tissue values and smooth heterogeneity.

    ``heterogeneity`` is the SD of a smooth multiplicative random field applied to each map
    inside the brain (0.03 = 3 %). ``head``: add extra-cerebral CSF, skull and scalp around
    the brain (:mod:`swigapp.phantom.head`; its random draws happen only then, so phantoms
    without a head are those of earlier versions); an anatomy with its own ``head``
    fractions (a real individual) uses those instead of the drawn shells. An anatomy with
    ``deep_gm`` gives it the "deepGM" values (:data:`DEEP_GM_RANGES`, not moved by
    ``adjust_values``) and ``gm - deep_gm`` the GM ones. ``adjust_values``: maps the drawn brain
    tissue values to others (a shift); ``lesion``: a lesion fraction (0-1) to use instead of
    ``n_lesions`` drawn ones.
    """
    values = sample_tissue_values(rng)
    if adjust_values is not None:
        values = adjust_values(values)
    if lesion is None:
        lesion = lesion_fraction(anatomy, rng, n_lesions, lesion_radius_mm)
    fractions = {
        "WM": anatomy.wm * (1.0 - lesion),
        "GM": anatomy.gm,
        "CSF": anatomy.csf,
        "lesion": anatomy.wm * lesion,
    }
    tissues = TISSUES
    deep = None
    if anatomy.deep_gm is not None:
        deep = np.minimum(anatomy.deep_gm, anatomy.gm)
        fractions["GM"] = anatomy.gm - deep
    if head:
        from swigapp.phantom.head import HEAD_TISSUE_RANGES, HEAD_TISSUES, head_fractions

        values = values | sample_tissue_values(rng, HEAD_TISSUE_RANGES)
        if anatomy.head is None:
            layers = head_fractions(anatomy, rng)
        else:  # a real head: its labelled tissues, no drawn shells
            layers = {t: anatomy.head.get(t, np.zeros(anatomy.shape, np.float32)) for t in
                      ("CSF", *HEAD_TISSUES)}  # fmt: skip
        fractions["CSF"] = fractions["CSF"] + layers.pop("CSF")
        fractions |= layers
        tissues = TISSUES + HEAD_TISSUES
    if deep is not None:  # after every draw the template phantoms make before their fields
        values = values | sample_tissue_values(rng, DEEP_GM_RANGES)
        fractions["deepGM"] = deep
        tissues = (*tissues, "deepGM")
    pd = sum(fractions[t] * values[t]["PD"] for t in tissues)
    water = np.maximum(pd, 1e-6)
    r1 = sum(fractions[t] * values[t]["PD"] / values[t]["T1"] for t in tissues) / water
    r2 = sum(fractions[t] * values[t]["PD"] / values[t]["T2"] for t in tissues) / water
    inside = pd > 0.05 if not head else pd > 0.01  # bone (PD 0.05-0.1) is part of a head
    maps = {}
    for name, data in (
        ("PD", pd),
        ("T1", 1.0 / np.maximum(r1, 1e-6)),
        ("T2", 1.0 / np.maximum(r2, 1e-6)),
    ):
        field = 1.0 + heterogeneity * smooth_field(anatomy.shape, rng, nodes=6)
        maps[name] = np.where(inside, data * field, 0.0).astype(np.float32)
    brain = ndimage.binary_fill_holes(anatomy.mask > 0.5)
    return TruthMaps(
        pd=maps["PD"],
        t1=maps["T1"],
        t2=maps["T2"],
        fractions={k: v.astype(np.float32) for k, v in fractions.items()},
        brain_mask=brain,
        lesion_mask=lesion > 0.5,
        values=values,
    )
