"""Image-domain interpolation of LR maps onto the HR grid (the baselines users have today).

Grid convention as in :mod:`swigapp.operators.kspace`: LR voxel j sits at HR voxel j N/M, so HR
voxel i samples the LR image at coordinate i M/N.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage


def upsample_interp(lr: np.ndarray, hr_shape: Sequence[int], order: int = 3) -> np.ndarray:
    """Spline interpolation of a 3D LR image onto the HR grid (order 1: trilinear, 3: cubic).

    Cubic uses scipy's B-spline prefilter; edges are extended by mirroring.
    """
    lr = np.asarray(lr, dtype=np.float64)
    if lr.ndim != len(hr_shape):
        raise ValueError(f"LR image has {lr.ndim} axes, target grid {len(hr_shape)}")
    axes = [np.arange(n) * (m / n) for n, m in zip(hr_shape, lr.shape, strict=True)]
    coords = np.meshgrid(*axes, indexing="ij")
    out = ndimage.map_coordinates(lr, coords, order=order, mode="mirror")
    return out.astype(np.float32)
