"""Tissue classes from a T1 map: a 3-class k-means on ln T1 inside the brain mask.

Used for QC figures and the group table (tissue medians); not a segmentation for analysis.
"""

from __future__ import annotations

import numpy as np

#: Label values and names, in order of increasing T1 (3T: WM ~0.8 s, GM ~1.3 s, CSF ~4 s).
LABELS: dict[int, str] = {1: "WM", 2: "GM", 3: "CSF"}
#: Initial class centres (s) of the k-means.
T1_CENTRES_S: tuple[float, float, float] = (0.85, 1.35, 3.5)
#: Values below this (s) are no tissue's T1 or T2 and are left unlabelled: zeros in a map
#: (an interpolation clipped at 0, with float residue of 1e-16 s) are a class of their own
#: in ln T1 (on the real in-vivo IR slice, whose failed fits were left at 0, they took "WM",
#: and the report said WM T1 0 ms).
MIN_TISSUE_S = 1e-3


def classify(
    t1: np.ndarray,
    mask: np.ndarray,
    iterations: int = 20,
    centres: tuple[float, float, float] = T1_CENTRES_S,
) -> np.ndarray:
    """Labels (uint8, 0 outside ``mask`` and below :data:`MIN_TISSUE_S`; 1 WM, 2 GM, 3 CSF)
    from a T1 map in seconds.

    k-means in ln T1 started from ``centres`` (s); the classes keep their T1 order. A T2 map
    (s) works too with T2-like centres (WM < GM < CSF holds for T2 as well).
    """
    t1 = np.asarray(t1, dtype=np.float64)
    mask = np.asarray(mask, dtype=bool) & np.isfinite(t1) & (t1 >= MIN_TISSUE_S)
    labels = np.zeros(t1.shape, dtype=np.uint8)
    if not mask.any():
        return labels
    x = np.log(t1[mask])
    centres = np.log(np.asarray(centres, dtype=np.float64))
    for _ in range(iterations):
        assign = np.argmin(np.abs(x[:, None] - centres[None]), axis=1)
        new = np.array(
            [x[assign == k].mean() if (assign == k).any() else centres[k] for k in range(3)]
        )
        new = np.sort(new)
        if np.allclose(new, centres, atol=1e-6):
            break
        centres = new
    labels[mask] = np.argmin(np.abs(x[:, None] - centres[None]), axis=1).astype(np.uint8) + 1
    return labels


def tissue_medians(maps: dict[str, np.ndarray], labels: np.ndarray) -> dict[str, dict[str, float]]:
    """Median of each map (PD a.u., T1 and T2 in s) per tissue label name (NaN if empty)."""
    out: dict[str, dict[str, float]] = {}
    for value, name in LABELS.items():
        sel = labels == value
        out[name] = {
            m: float(np.median(np.asarray(v)[sel])) if sel.any() else float("nan")
            for m, v in maps.items()
        }
    return out
