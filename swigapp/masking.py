"""Brain masks from quantitative maps."""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def mask_from_maps(pd: np.ndarray, t1: np.ndarray, threshold: float = 0.4) -> np.ndarray:
    """Brain mask from PD (a.u.) and T1 (s) maps on one grid.

    Voxels with PD above ``threshold`` x the 90th percentile of positive PD and a
    plausible T1 (0.2-5 s), largest connected component, holes filled, one closing pass.
    """
    pd = np.nan_to_num(np.asarray(pd, dtype=np.float32))
    t1 = np.nan_to_num(np.asarray(t1, dtype=np.float32))
    positive = pd[pd > 0]
    if positive.size == 0:
        return np.zeros(pd.shape, dtype=bool)
    candidate = (pd > threshold * np.percentile(positive, 90)) & (t1 > 0.2) & (t1 < 5.0)
    labels, n = ndimage.label(candidate)
    if n == 0:
        return candidate
    sizes = ndimage.sum(candidate, labels, index=np.arange(1, n + 1))
    largest = labels == (int(np.argmax(sizes)) + 1)
    closed = ndimage.binary_closing(largest, iterations=1)
    return ndimage.binary_fill_holes(closed)
