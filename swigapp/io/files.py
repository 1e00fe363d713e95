"""Small, safe writers for NIfTI images and JSON sidecars."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np


def umasked(mode: int) -> int:
    """``mode`` with the process umask applied: the mode a plain open()/mkdir() would give
    (for files and folders made by tempfile, which uses 0600/0700)."""
    mask = os.umask(0)
    os.umask(mask)
    return mode & ~mask


def save_nifti(path: str | Path, data: np.ndarray, affine: np.ndarray) -> Path:
    """Write a float32 (or integer mask) NIfTI-1 image with mm/s units and scanner-space codes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    array = np.asarray(data)
    if array.dtype == bool:
        array = array.astype(np.uint8)
    elif not np.issubdtype(array.dtype, np.integer):
        array = array.astype(np.float32)
    img = nib.Nifti1Image(array, np.asarray(affine, dtype=float))
    img.header.set_xyzt_units("mm", "sec")
    img.set_qform(img.affine, code=1)
    img.set_sform(img.affine, code=1)
    nib.save(img, path)
    return path


def write_json(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` as indented JSON (keys in insertion order), creating parent folders."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path
