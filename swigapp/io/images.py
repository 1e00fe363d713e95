"""Loading input images with the checks every input gets, and the error they raise.

Below :mod:`swigapp.inputs.qmri` (map checks) and :mod:`swigapp.io.bids` (queries), which
both use it.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

from swigapp.maps import MAP_ORDER  # noqa: F401 (io's callers import it from here too)


class InputError(ValueError):
    """An input file is missing, unreadable or implausible."""


def load_image(path: str | Path, finite: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Load a 3D NIfTI as float32 data (scl_slope/scl_inter applied) and affine.

    InputError for corrupt or non-3D data, and with ``finite`` for NaN/Inf voxels (guides;
    the qMRI maps are loaded with ``finite=False``: their NaN voxels are missing data).
    """
    try:
        img = nib.load(str(path))
        data = np.asarray(img.dataobj, dtype=np.float32)
    except Exception as err:  # nibabel raises many types for corrupt files
        raise InputError(f"{path}: cannot read NIfTI ({err})") from err
    data = np.squeeze(data) if data.ndim == 4 and data.shape[3] == 1 else data
    if data.ndim != 3:
        raise InputError(f"{path}: expected a 3D image, got shape {data.shape}")
    if finite and not np.isfinite(data).all():
        bad = int((~np.isfinite(data)).sum())
        raise InputError(f"{path}: {bad} voxels are NaN or infinite")
    return data, np.asarray(img.affine, dtype=float)
